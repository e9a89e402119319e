/// The counters of one entry point (control point) in a ``DeploymentSnapshot``.
public struct EntryPointSnapshot: Sendable, Equatable {
    public var name: String
    public var state: SuspendState
    /// Requests admitted here and not yet completed.
    public var active: Int
    /// Admitted requests, ever (completed by status class + active).
    public var total: Int
    public var limit: Int?
    /// Rejections that happened at this entry point, by reason; every reason present, zeros included.
    public var rejected: [RejectionReason: Int]
    /// Completed requests by response status class.
    public var status: StatusClassCounts
    /// Latency from admission to completion of the completed requests.
    public var latency: LatencySummary

    public init(
        name: String, state: SuspendState, active: Int, total: Int, limit: Int?,
        rejected: [RejectionReason: Int], status: StatusClassCounts, latency: LatencySummary
    ) {
        self.name = name
        self.state = state
        self.active = active
        self.total = total
        self.limit = limit
        self.rejected = rejected
        self.status = status
        self.latency = latency
    }
}

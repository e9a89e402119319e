/// A point-in-time view of every counter, for the admin API and metrics.
///
/// Counters are read one by one without a lock, so a snapshot taken under load is not an
/// atomic cut (a total may lag its parts by the requests completing meanwhile); at rest it is
/// exact.
public struct RequestControlSnapshot: Sendable, Equatable {
    /// State of the gateway scope.
    public var state: SuspendState
    /// Requests in flight gateway-wide.
    public var active: Int
    /// Gateway-wide limit; `nil` = unlimited.
    public var limit: Int?
    /// Admitted requests, ever, including those of entry points a reconcile has since removed
    /// (as counted when they were removed), so it never goes backwards.
    public var total: Int
    /// Rejections by reason, summed over all entry points, removed ones included like `total`;
    /// every reason present.
    public var rejected: [RejectionReason: Int]
    /// The deployments, in configuration order.
    public var deployments: [DeploymentSnapshot]

    public init(
        state: SuspendState, active: Int, limit: Int?, total: Int,
        rejected: [RejectionReason: Int], deployments: [DeploymentSnapshot]
    ) {
        self.state = state
        self.active = active
        self.limit = limit
        self.total = total
        self.rejected = rejected
        self.deployments = deployments
    }
}

/// The counters of one backend address in a ``DeploymentSnapshot``.
public struct BackendSnapshot: Sendable, Equatable {
    public var address: String
    public var state: SuspendState
    /// False from the backend's pre-suspend until its resume.
    public var inRotation: Bool
    /// Requests being forwarded to it now.
    public var active: Int
    /// Acquisitions, ever.
    public var total: Int
    /// Releases marked failed (refused, broken, timed out).
    public var failures: Int

    public init(address: String, state: SuspendState, inRotation: Bool, active: Int, total: Int, failures: Int) {
        self.address = address
        self.state = state
        self.inRotation = inRotation
        self.active = active
        self.total = total
        self.failures = failures
    }
}

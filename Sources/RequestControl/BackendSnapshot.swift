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
    /// Out of the load balancer's choice after failing too often (passive health).
    public var ejected: Bool
    /// Times it was ejected.
    public var ejections: Int

    public init(
        address: String, state: SuspendState, inRotation: Bool, active: Int, total: Int, failures: Int,
        ejected: Bool = false, ejections: Int = 0
    ) {
        self.address = address
        self.state = state
        self.inRotation = inRotation
        self.active = active
        self.total = total
        self.failures = failures
        self.ejected = ejected
        self.ejections = ejections
    }
}

/// The counters of one deployment in a ``RequestControlSnapshot``.
public struct DeploymentSnapshot: Sendable, Equatable {
    public var name: String
    public var state: SuspendState
    /// Requests in flight over all entry points of the deployment.
    public var active: Int
    /// Admitted requests, ever (sum of the entry points).
    public var total: Int
    public var limit: Int?
    /// Backends, in configuration order.
    public var backends: [BackendSnapshot]
    /// Entry points, in configuration order.
    public var entryPoints: [EntryPointSnapshot]

    public init(
        name: String, state: SuspendState, active: Int, total: Int, limit: Int?,
        backends: [BackendSnapshot], entryPoints: [EntryPointSnapshot]
    ) {
        self.name = name
        self.state = state
        self.active = active
        self.total = total
        self.limit = limit
        self.backends = backends
        self.entryPoints = entryPoints
    }
}

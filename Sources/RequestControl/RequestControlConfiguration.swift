/// The shape the controller counts: which deployments, entry points and backends exist, and
/// their in-flight limits.
///
/// The controller builds the counters from this before any request can use them (in `init`, or
/// in `reconcile` for the scopes a new configuration adds), so the request path never looks
/// anything up by name or allocates.
public struct RequestControlConfiguration: Sendable, Equatable {
    /// Gateway-wide in-flight limit; `nil` = unlimited.
    public var globalLimit: Int?
    /// The deployments, in the order snapshots list them.
    public var deployments: [Deployment]

    public init(globalLimit: Int?, deployments: [Deployment]) {
        self.globalLimit = globalLimit
        self.deployments = deployments
    }

    /// One deployment: its limit, the entry points requests arrive through, and its backends.
    public struct Deployment: Sendable, Equatable {
        public var name: String
        /// In-flight limit over all entry points of the deployment; `nil` = unlimited.
        public var limit: Int?
        public var entryPoints: [EntryPoint]
        /// Backend addresses, e.g. `"127.0.0.1:9001"`.
        public var backends: [String]

        public init(name: String, limit: Int?, entryPoints: [EntryPoint], backends: [String]) {
            self.name = name
            self.limit = limit
            self.entryPoints = entryPoints
            self.backends = backends
        }
    }

    /// One way into a deployment (a listener, a route), with its own limit.
    public struct EntryPoint: Sendable, Equatable {
        public var name: String
        /// In-flight limit of this entry point; `nil` = unlimited.
        public var limit: Int?

        public init(name: String, limit: Int?) {
            self.name = name
            self.limit = limit
        }
    }
}

/// What to start for one instance.
///
/// It carries the complete environment rather than additions to the gateway's own: what a
/// backend sees must be what the configuration says, not whatever the gateway happened to be
/// started with, so the caller merges (inherit, `PORT`, configured variables) and the spawner
/// passes exactly this.
public struct SpawnRequest: Sendable, Equatable, Codable {
    /// The instance name, e.g. `shop#2`; it prefixes every relayed output line and names the
    /// instance in errors.
    public var name: String
    /// The argv. `arguments[0]` is looked up in the `PATH` of ``environment`` (like `execvp`)
    /// unless it contains a `/`; a relative path with a `/` is relative to ``workingDirectory``.
    public var arguments: [String]
    /// The child's working directory; `nil` keeps the gateway's.
    public var workingDirectory: String?
    /// The whole environment of the child.
    public var environment: [String: String]
    /// Which instance this is (deployment, index, port), for a launcher that keeps a table of
    /// them: the keeper hands it to the next worker. Nil for a process that is no instance.
    public var placement: Placement?
    /// Where the relay also writes the output (the path already expanded for this instance).
    public var logFile: LogFileSpec?

    public init(
        name: String,
        arguments: [String],
        workingDirectory: String? = nil,
        environment: [String: String],
        placement: Placement? = nil,
        logFile: LogFileSpec? = nil
    ) {
        self.logFile = logFile
        self.name = name
        self.arguments = arguments
        self.workingDirectory = workingDirectory
        self.environment = environment
        self.placement = placement
    }

    public struct Placement: Sendable, Equatable, Codable {
        public var deployment: String
        public var index: Int
        public var port: Int

        public init(deployment: String, index: Int, port: Int) {
            self.deployment = deployment
            self.index = index
            self.port = port
        }
    }
}

/// Whatever starts an instance's process: ``ProcessSpawner`` here, or a keeper process that
/// owns the children while this process (a worker) only decides (the `Keeper` module).
public protocol ProcessLaunching: Sendable {
    /// Starts `request` and returns once it runs (or failed to start). May block for the few
    /// milliseconds a spawn (or a round trip to the keeper) takes.
    func spawn(_ request: SpawnRequest) throws(SpawnError) -> SpawnedProcess
}

extension ProcessSpawner: ProcessLaunching {}

/// What to start for one instance.
///
/// It carries the complete environment rather than additions to the gateway's own: what a
/// backend sees must be what the configuration says, not whatever the gateway happened to be
/// started with, so the caller merges (inherit, `PORT`, configured variables) and the spawner
/// passes exactly this.
public struct SpawnRequest: Sendable, Equatable {
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

    public init(
        name: String,
        arguments: [String],
        workingDirectory: String? = nil,
        environment: [String: String]
    ) {
        self.name = name
        self.arguments = arguments
        self.workingDirectory = workingDirectory
        self.environment = environment
    }
}

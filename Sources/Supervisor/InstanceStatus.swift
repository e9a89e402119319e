/// One row of the process table (`GET /processes`, `gateway status`).
public struct InstanceStatus: Sendable, Equatable {
    public var deployment: String
    public var index: Int
    public var name: String
    public var pid: Int32?
    public var port: Int?
    /// `127.0.0.1:9101`: the backend address the gateway routes to (nil when not running).
    public var address: String?
    public var state: Supervisor.InstanceState
    /// Why it is in that state: the last exit, the failed check, the operator's stop...
    public var reason: String
    /// In the load-balancer rotation (passed its health check, not being drained).
    public var ready: Bool
    /// Times this slot was started again after its first start: `crashes + plannedRestarts`.
    public var restarts: Int
    /// Restarts after the process ended without being asked to: it exited, could not start, or
    /// was killed by the supervisor (failed health checks, not ready in time).
    public var crashes: Int
    /// Restarts an operator or the configuration asked for: restart, rolling restart, a reload
    /// that rolled the deployment.
    public var plannedRestarts: Int
    public var uptime: Duration?
    /// Resident memory of the instance's whole process tree (its descendants and its process
    /// group: a gunicorn master and its workers).
    public var rssBytes: Int?
    /// CPU of the same tree, in percent of one core since the previous status.
    public var cpuPercent: Double?
    /// The argv as executed, `$PORT` and the other variables expanded (nil when not running).
    public var command: [String]?
    /// `exited with signal 9 (KILL) after 12.4 s`
    public var lastExit: String?
}

/// What one step of a rolling restart did.
public struct RollStep: Sendable, Equatable {
    public var instance: String
    public var oldPid: Int32?
    public var newPid: Int32?
    public var oldPort: Int?
    public var newPort: Int?
    /// The old instance had no request in flight when it got its stop signal.
    public var drained: Bool
    public var drainTime: Duration
    /// From the old instance leaving the rotation to its replacement joining it (zero for a
    /// surge: the new one joins before the old one leaves).
    public var outOfRotation: Duration
    public var error: String?
}

/// The answer to a rolling restart: all steps, and whether the roll finished.
public struct RollReport: Sendable, Equatable {
    public var deployment: String
    public var ok: Bool
    public var message: String
    public var steps: [RollStep]
}

/// Why an operation on the supervisor was refused; the message names the deployment or instance.
public struct SupervisorError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// No such deployment or instance (HTTP 404).
        case notFound
        /// Not possible now: a roll is already running, the deployment is not supervised... (409)
        case conflict
        /// Tried and failed: an instance did not get ready (500).
        case failed
    }

    public var kind: Kind
    public var message: String
    public var description: String { message }

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
}

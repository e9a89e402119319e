import Supervisor

/// What a keeper hands to the program it re-executes into (its own next version, same pid):
/// the state machine, and where everything that outlives the exec is. Descriptors keep their
/// numbers across an exec (they are made inheritable first), and the children stay ours.
/// It travels as JSON in ``variable``, read once and removed at start.
public struct KeeperState: Codable, Sendable, Equatable {
    public static let variable = "GATEWAY_KEEPER_STATE"

    public struct Worker: Codable, Sendable, Equatable {
        public var generation: Int
        public var pid: Int32
        /// The keeper's end of the worker's link.
        public var link: Int32
        public var adopted: Int
        public var readyAfterMilliseconds: Int64?
    }

    public struct Instance: Codable, Sendable, Equatable {
        public var instance: KeeperMessage.Instance
        /// The worker that ordered it.
        public var orderedBy: Int?
        /// Read ends of its stdout and stderr (-1 when closed).
        public var output: [Int32]
        /// Its `log_file` (nil: none, or a keeper before log files). The lines kept in memory
        /// do not survive the exec (an environment variable is too small for them).
        public var logFile: LogFileSpec?
    }

    public var machine: KeeperStateMachine
    public var listeners: [KeeperMessage.Listener]
    public var sockets: [Int32]
    public var workers: [Worker]
    public var instances: [Instance]
    /// The process-group watchdog: its pid and our end of its channel.
    public var watchdogPID: Int32?
    public var watchdogChannel: Int32?
    /// `$NOTIFY_SOCKET` as systemd gave it (the keeper removes it from its environment).
    public var notifySocket: String?
    /// The binary the keeper ran before, for the log.
    public var previousBinary: String
}

/// What the keeper and a worker say to each other over their socket (roadmap step 7).
///
/// The keeper is the small, stable process that owns the listening sockets and the supervised
/// instances; a worker is the gateway proper (proxy, RequestControl, supervision policy, admin
/// API) and can be replaced at any time. The keeper only does what it is told to processes and
/// reports what happened to them; every decision stays in the worker.
///
/// Messages are values; `KeeperFraming` puts them on the wire, and the listening sockets ride
/// along with `hello` as SCM_RIGHTS (`DescriptorPassing`).
import Supervisor

public enum KeeperMessage: Equatable, Sendable, Codable {
    // MARK: Keeper to worker

    /// The first message to a new worker: who it is, the listening sockets sent with it (in
    /// this order), and the instances running now, which it adopts instead of starting anew.
    case hello(Hello)
    /// An instance the worker asked for was started.
    case spawned(Spawned)
    /// An instance the worker asked for could not be started.
    case spawnFailed(SpawnFailed)
    /// An instance exited (the keeper reaped it).
    case exited(Exited)
    /// Stop accepting, let what is in flight finish, then exit: a new worker serves now.
    case drain(reason: String)
    /// Run the gateway's graceful shutdown: drain, stop every instance through the two phases
    /// (the keeper carries out the signals), exit.
    case shutdown(reason: String)
    /// Reload the configuration file (the keeper got SIGHUP).
    case reload
    /// How the upgrade this worker asked for ended (sent before `drain` when it succeeded).
    case upgradeFinished(ok: Bool, message: String)
    /// Start accepting on the listening sockets: the worker this one replaces has stopped.
    case startAccepting
    /// The answer to `readLogs`.
    case logs(LogsAnswer)

    // MARK: Worker to keeper

    /// The worker adopted the instances and accepts on the sockets: the keeper may now drain
    /// the worker it replaces.
    case ready(workerPID: Int32, adopted: Int = 0)
    /// Start an instance.
    case spawn(SpawnOrder)
    /// Signal an instance's process group.
    case signal(pid: Int32, signal: Int32)
    /// The instance's state changed; the keeper keeps it for the table the next worker gets.
    case instanceState(pid: Int32, state: String)
    /// Replace the worker with one started from `binary` (nil: the keeper's own binary).
    case upgrade(binary: String?)
    /// The draining worker has finished (after closing `connections` client connections); it
    /// exits next.
    case drained(connections: Int)
    /// A replaced worker has closed its listeners: its successor may accept now.
    case stoppedAccepting
    /// The worker shuts the gateway down on its own (`POST /shutdown`): do not replace it.
    case stopping(reason: String)
    /// A reload the keeper forwarded has finished.
    case reloaded(ok: Bool, message: String)
    /// The last output lines of an instance (the keeper reads the pipes and keeps them). Only
    /// sent to a keeper whose hello lists ``Hello/logsFeature``.
    case readLogs(LogsRequest)
}

extension KeeperMessage {
    public struct Hello: Equatable, Sendable, Codable {
        public var keeperPID: Int32
        /// Counts the workers this keeper started, from 1.
        public var generation: Int
        /// The listeners, in the order of the descriptors passed with the message.
        public var listeners: [Listener]
        public var instances: [Instance]
        /// What this keeper understands beyond the first protocol (nil from a keeper that
        /// predates the list). Messages are added within frame version 1, since a keeper and the
        /// worker it starts from another binary (an upgrade, before the keeper re-executes) may
        /// differ: a worker sends a newer message only when the keeper listed it here, and an
        /// old keeper's worker simply goes without.
        public var features: [String]?

        /// `readLogs` and `logs`.
        public static let logsFeature = "logs"

        public init(keeperPID: Int32, generation: Int, listeners: [Listener], instances: [Instance], features: [String]? = nil) {
            self.keeperPID = keeperPID
            self.generation = generation
            self.listeners = listeners
            self.instances = instances
            self.features = features
        }
    }

    public struct LogsRequest: Equatable, Sendable, Codable {
        /// Matches the answer to the request.
        public var request: Int
        public var query: OutputQuery

        public init(request: Int, query: OutputQuery) {
            self.request = request
            self.query = query
        }
    }

    public struct LogsAnswer: Equatable, Sendable, Codable {
        public var request: Int
        public var page: OutputPage

        public init(request: Int, page: OutputPage) {
            self.request = request
            self.page = page
        }
    }

    /// A listening socket by what the configuration calls it.
    public struct Listener: Equatable, Sendable, Codable {
        /// `host:port` as configured (the admin listener included), or `unix:PATH` for the
        /// admin socket.
        public var address: String
        /// `proxy`, `admin` or `admin-socket`.
        public var role: String

        public init(address: String, role: String) {
            self.address = address
            self.role = role
        }
    }

    /// A running instance, as the keeper knows it.
    public struct Instance: Equatable, Sendable, Codable {
        public var deployment: String
        public var index: Int
        public var pid: Int32
        public var port: Int
        /// Seconds since the epoch.
        public var startedAt: Double
        /// The last state a worker reported (`READY`, `STARTING`, ...).
        public var lastState: String

        public init(deployment: String, index: Int, pid: Int32, port: Int, startedAt: Double, lastState: String) {
            self.deployment = deployment
            self.index = index
            self.pid = pid
            self.port = port
            self.startedAt = startedAt
            self.lastState = lastState
        }
    }

    public struct SpawnOrder: Equatable, Sendable, Codable {
        /// Matches the answer (`spawned` or `spawnFailed`) to the order.
        public var request: Int
        /// What to start, as the worker's supervisor asked for it; its `placement` goes into the
        /// keeper's table.
        public var process: SpawnRequest

        public init(request: Int, process: SpawnRequest) {
            self.request = request
            self.process = process
        }
    }

    public struct Spawned: Equatable, Sendable, Codable {
        public var request: Int
        public var pid: Int32
        public var startedAt: Double

        public init(request: Int, pid: Int32, startedAt: Double) {
            self.request = request
            self.pid = pid
            self.startedAt = startedAt
        }
    }

    public struct SpawnFailed: Equatable, Sendable, Codable {
        public var request: Int
        public var reason: String

        public init(request: Int, reason: String) {
            self.request = request
            self.reason = reason
        }
    }

    public struct Exited: Equatable, Sendable, Codable {
        public var pid: Int32
        public var status: ExitStatus

        public init(pid: Int32, status: ExitStatus) {
            self.pid = pid
            self.status = status
        }
    }
}

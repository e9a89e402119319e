/// How the instances of one deployment are run: what to start, where, how many, how to tell they
/// are healthy, how to stop them and how to respawn them.
///
/// Plain values, compared with `==` by a reload: a deployment whose spec changed (other than
/// `instances`) is rolled onto the new spec.
public struct ProcessSpec: Sendable, Equatable {
    /// argv of each instance; `command[0]` is looked up in PATH unless it contains a `/`.
    /// `$PORT`, `$GATEWAY_INSTANCE` and `$GATEWAY_DEPLOYMENT` are expanded per instance
    /// (``CommandExpansion``).
    public var command: [String]
    /// Working directory of each instance (expanded like `command`); nil = the gateway's.
    public var workingDirectory: String?
    /// Added to (and overriding) the gateway's environment. `PORT` is set by the supervisor.
    public var environment: [String: String]
    public var instances: Int
    /// Ports handed out as `$PORT`, one free port per instance.
    public var ports: ClosedRange<Int>
    /// The signal that asks an instance to stop (after it was drained).
    public var stopSignal: Int32
    /// How long an instance may take to exit after the stop signal before its group gets SIGKILL.
    public var stopTimeout: Duration
    /// How long a drain (the requests in flight to one instance) may take before the stop signal
    /// is sent anyway.
    public var drainTimeout: Duration
    public var health: HealthCheckSpec
    /// A new instance that does not pass its first health check within this is killed and counts
    /// as a failed start.
    public var readyTimeout: Duration
    public var respawn: RespawnPolicy
    /// Instances a rolling restart stops at the same time (deployments of more than one instance).
    public var maxUnavailable: Int
    /// `log_file`: the output also goes to this file (its path expanded per instance).
    public var logFile: LogFileSpec?

    public init(
        command: [String], workingDirectory: String? = nil, environment: [String: String] = [:],
        instances: Int = 1, ports: ClosedRange<Int>, stopSignal: Int32 = 15,
        stopTimeout: Duration = .seconds(20), drainTimeout: Duration = .seconds(30),
        health: HealthCheckSpec = HealthCheckSpec(), readyTimeout: Duration = .seconds(30),
        respawn: RespawnPolicy = RespawnPolicy(), maxUnavailable: Int = 1, logFile: LogFileSpec? = nil
    ) {
        self.logFile = logFile
        self.command = command
        self.workingDirectory = workingDirectory
        self.environment = environment
        self.instances = instances
        self.ports = ports
        self.stopSignal = stopSignal
        self.stopTimeout = stopTimeout
        self.drainTimeout = drainTimeout
        self.health = health
        self.readyTimeout = readyTimeout
        self.respawn = respawn
        self.maxUnavailable = maxUnavailable
    }

    /// The same spec apart from the instance count: a change of `instances` alone scales the
    /// deployment instead of rolling it.
    public func sameExceptInstances(_ other: ProcessSpec) -> Bool {
        var copy = other
        copy.instances = instances
        return copy == self
    }
}

/// How the supervisor decides that an instance serves: an HTTP GET that must answer 2xx/3xx, or
/// a TCP connect that must succeed.
public struct HealthCheckSpec: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case http(path: String)
        case tcp
    }

    public var kind: Kind
    /// Between two checks of a ready instance.
    public var interval: Duration
    /// One check fails if it takes longer.
    public var timeout: Duration
    /// Failed checks in a row after which a ready instance is taken out of rotation, killed and
    /// restarted.
    public var failures: Int

    public init(kind: Kind = .tcp, interval: Duration = .seconds(1), timeout: Duration = .milliseconds(500), failures: Int = 3) {
        self.kind = kind
        self.interval = interval
        self.timeout = timeout
        self.failures = failures
    }
}

/// When a crashed instance is started again: after growing delays, counted again from the first
/// one after a healthy period, and never again (FAILED, until an operator starts it) after
/// `maxRestarts` restarts without such a period.
public struct RespawnPolicy: Sendable, Equatable {
    /// JBoss's process controller table.
    public static let defaultDelays: [Duration] = [.seconds(1), .seconds(5), .seconds(10), .seconds(15), .seconds(30)]

    /// The n-th restart in a row waits `delays[n-1]`; the last entry repeats.
    public var delays: [Duration]
    /// An instance that ran this long counts as healthy: its next crash starts the table over.
    public var resetAfter: Duration
    /// nil = never give up.
    public var maxRestarts: Int?

    public init(delays: [Duration] = RespawnPolicy.defaultDelays, resetAfter: Duration = .seconds(60), maxRestarts: Int? = nil) {
        self.delays = delays.isEmpty ? RespawnPolicy.defaultDelays : delays
        self.resetAfter = resetAfter
        self.maxRestarts = maxRestarts
    }
}

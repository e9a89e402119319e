/// One running instance as the rest of the gateway sees it: where it listens.
public struct InstanceEndpoint: Sendable, Hashable, CustomStringConvertible {
    public var deployment: String
    /// 1-based, stable across restarts: `shop#2` stays `shop#2`.
    public var index: Int
    public var host: String
    public var port: Int
    public var pid: Int32

    public init(deployment: String, index: Int, host: String, port: Int, pid: Int32) {
        self.deployment = deployment
        self.index = index
        self.host = host
        self.port = port
        self.pid = pid
    }

    /// `shop#2`: the name operators know.
    public var name: String { "\(deployment)#\(index)" }
    /// `127.0.0.1:9101`: the backend address requests go to.
    public var address: String { "\(host):\(port)" }
    public var description: String { "\(name) (pid \(pid), \(address))" }
}

/// What a drain of one instance achieved before it was stopped.
public struct DrainReport: Sendable, Equatable {
    /// Its requests in flight reached zero (false: the drain timeout passed first).
    public var drained: Bool
    /// Requests still in flight when the drain ended.
    public var active: Int
    public var duration: Duration

    public init(drained: Bool, active: Int, duration: Duration) {
        self.drained = drained
        self.active = active
        self.duration = duration
    }
}

/// The result of one health check.
public enum HealthProbeResult: Sendable, Equatable {
    case passed
    case failed(String)
}

/// What the supervisor needs from the gateway around it, which knows HTTP and RequestControl
/// (the supervisor knows neither): rotation, the drain before every stop, and health probes.
///
/// The calls for one instance come in this order: `probe`* → `instanceReady` → `probe`* →
/// (`drain` →) `instanceGone`. `instanceGone` follows every `instanceReady` once, after the
/// process exited, so a replacement on the same port starts from a clean slate.
public protocol SupervisorDelegate: Sendable {
    /// The instance passed its first health check: put it in the load-balancer rotation.
    func instanceReady(_ instance: InstanceEndpoint) async
    /// The instance is gone (exited, killed after failed checks, or stopped after its drain):
    /// take it out of rotation and forget its address.
    func instanceGone(_ instance: InstanceEndpoint) async
    /// Before a planned stop: take the instance out of rotation (preSuspend) and wait until its
    /// requests in flight are done or `timeout` passed (suspend). Only then is it signalled.
    func drain(_ instance: InstanceEndpoint, timeout: Duration) async -> DrainReport
    /// One health check; must answer within `check.timeout` (the supervisor does not cancel it).
    func probe(_ instance: InstanceEndpoint, check: HealthCheckSpec) async -> HealthProbeResult
}

/// A process that runs already and is handed to ``ProcessSupervisor/adopt(deployment:spec:instances:)``:
/// a new worker takes over the instances its keeper kept running.
public struct AdoptedInstance: Sendable {
    public var index: Int
    public var port: Int
    public var process: SpawnedProcess
    /// The state the previous worker last reported (READY, STOPPING...), for the log.
    public var lastState: String?

    public init(index: Int, port: Int, process: SpawnedProcess, lastState: String? = nil) {
        self.index = index
        self.port = port
        self.process = process
        self.lastState = lastState
    }
}

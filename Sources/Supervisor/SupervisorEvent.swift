/// What the supervisor tells the gateway's event stream: each instance state change (with the
/// reason an operator reads) and each step of a rolling restart, in the order they happen.
public enum SupervisorEvent: Sendable, Equatable {
    /// `pid` is the slot's current process, when it has one.
    case instanceState(deployment: String, index: Int, pid: Int32?, from: Supervisor.InstanceState, to: Supervisor.InstanceState, reason: String)
    case rollStarted(deployment: String, instances: Int)
    /// One instance replaced (or the attempt that failed, with its error).
    case rollStep(RollStep)
    case rollFinished(deployment: String, ok: Bool, message: String)
}

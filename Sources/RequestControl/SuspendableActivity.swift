/// Something outside the counters that takes part in a suspend: the load balancer, listeners,
/// the readiness endpoint, the supervisor.
///
/// Activities are registered with a group; lower groups suspend first and resume last, so
/// e.g. the readiness endpoint can flip before listeners stop accepting.
public protocol SuspendableActivity: AnyObject, Sendable {
    /// Called while the scope still serves: leave load-balancer rotation, close idle
    /// keep-alives, flip readiness. Bounded by the controller's pre-suspend timeout.
    func preSuspend(_ scope: SuspendScope) async
    /// Called after the drain finished or timed out.
    func suspended(_ scope: SuspendScope) async
    /// Called when the scope returns to RUNNING.
    func resume(_ scope: SuspendScope) async
}

/// The life cycle of one suspend scope: `RUNNING -> PRE_SUSPEND -> SUSPENDING -> SUSPENDED`,
/// and back to `RUNNING` from any state on resume.
///
/// PRE_SUSPEND exists so the outside world (load balancer, readiness, keep-alives) is told
/// before requests are refused; the raw values are what the admin API and logs show.
public enum SuspendState: String, Sendable, Hashable, CaseIterable {
    /// Admitting requests.
    case running = "RUNNING"
    /// Still admitting; activities are told to steer traffic away.
    case preSuspend = "PRE_SUSPEND"
    /// Refusing new requests and waiting for the ones in flight.
    case suspending = "SUSPENDING"
    /// Refusing new requests; the drain finished or timed out.
    case suspended = "SUSPENDED"

    /// True from PRE_SUSPEND on: the scope is on its way out.
    var isDraining: Bool { self != .running }
}

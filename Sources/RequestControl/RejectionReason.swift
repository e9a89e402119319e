/// Why a request was refused.
///
/// WildFly only answers RUN or REJECTED; we keep the reason because a refused client gets a
/// different answer for overload than for draining, and operators need them apart in metrics.
/// The raw values are the metric label values.
public enum RejectionReason: String, Sendable, Hashable, CaseIterable {
    /// The entry point, its deployment or the gateway is suspending or suspended (draining).
    case suspended
    /// The gateway-wide in-flight limit was reached.
    case globalLimit = "global_limit"
    /// The deployment's in-flight limit was reached.
    case deploymentLimit = "deployment_limit"
    /// The entry point's in-flight limit was reached.
    case entryPointLimit = "entry_point_limit"
}

/// Supervises backend processes: spawn, relay output, reap, respawn, health-check.
///
/// Filled in by the supervised-backends work; it builds now so the layout of the design card holds.
public enum Supervisor {
    /// The states an instance moves through, as DESIGN.md names them.
    public enum InstanceState: String, Sendable, CaseIterable {
        case starting = "STARTING"
        case ready = "READY"
        case stopping = "STOPPING"
        case stopped = "STOPPED"
        case backoff = "BACKOFF"
        case failed = "FAILED"
    }
}

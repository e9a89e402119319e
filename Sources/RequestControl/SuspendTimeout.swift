/// How long a suspend waits for the requests in flight.
///
/// WildFly's semantics, kept because operators know them: 0 = stop admitting but do not wait,
/// >0 = wait up to N, <0 = wait for ever.
public enum SuspendTimeout: Sendable, Hashable {
    /// Stop admitting and return at once with the count still in flight.
    case noWait
    /// Wait for the drain at most this long.
    case after(Duration)
    /// Wait until the last request in flight completes.
    case forever

    /// Maps a configured number of seconds with WildFly's rule: `0` -> `.noWait`,
    /// `> 0` -> `.after`, `< 0` -> `.forever`. NaN is treated as `.noWait`.
    public init(seconds: Double) {
        if seconds > 0 {
            self = .after(.nanoseconds(Int64(min(seconds, 9.2e9) * 1e9)))
        } else if seconds < 0 {
            self = .forever
        } else {
            self = .noWait
        }
    }
}

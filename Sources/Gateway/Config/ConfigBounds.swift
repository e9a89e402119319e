/// The largest value each number of the configuration (and of the admin API's parameters) may
/// take, in one place so the README's table and the checks cannot drift apart.
///
/// Every bound is far beyond any sensible setting; what it rules out is a value that would
/// overflow later (a `Duration` turned into nanoseconds and added to a clock, a count plus one,
/// a setting narrowed to the 32 bits HTTP/2 carries) and trap far from the file that said it.
enum ConfigBounds {
    /// The longest duration anywhere: a year. `Duration` and NIO's `TimeAmount` hold about 292
    /// years of nanoseconds, so a year added to any clock reading cannot overflow.
    static let maxDuration: Duration = .seconds(maxDurationSeconds)
    static let maxDurationSeconds: Int64 = 365 * 24 * 3600
    /// How the maximum duration is written in messages.
    static let maxDurationText = "8760h (365 days)"

    /// Event-loop threads.
    static let threads = 1024
    /// In-flight limits (global, deployment, entry point): leave the key out for no limit.
    static let maxRequests = 1_000_000_000
    /// Request head size: 16 MiB.
    static let maxHeaderBytes = 16 << 20
    /// Request body size: whatever a 64-bit count holds.
    static let maxBodyBytes = Int.max
    /// HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS` and window sizes: a 31-bit value on the wire.
    static let http2Value = Int(Int32.max)
    /// Supervised instances (and `max_unavailable`): one port each, plus the spare a roll uses.
    static let instances = 65_534
    /// `admin.max_connections`.
    static let adminConnections = 10_000
    /// Retries of one request on other backends.
    static let retries = 10
    /// Health-check failures in a row, restarts in a row, connection failures before ejection.
    static let attempts = 1_000_000
}

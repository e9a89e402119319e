/// Counts failed sign-ins (bad tokens, unknown sessions) per client address and refuses an
/// address that failed too often, so a token cannot be guessed at network speed.
///
/// A fixed window per address: `limit` failures within `window` block that address until the
/// window that began with its first failure ends. Pure: the caller passes the time.
struct AdminFailureLimiter: Sendable {
    static let defaultLimit = 10
    static let defaultWindow: Duration = .seconds(60)
    /// Addresses remembered at once; past it the oldest windows are forgotten first.
    static let maxAddresses = 10_000

    private struct Window: Sendable {
        var started: ContinuousClock.Instant
        var failures: Int
    }

    let limit: Int
    let window: Duration
    private var windows: [String: Window] = [:]

    init(limit: Int = defaultLimit, window: Duration = defaultWindow) {
        self.limit = limit
        self.window = window
    }

    /// How long `address` must still wait, or nil when it may try.
    func blocked(_ address: String, now: ContinuousClock.Instant) -> Duration? {
        guard let entry = windows[address], entry.failures >= limit else { return nil }
        let end = entry.started + window
        return end > now ? end - now : nil
    }

    /// Returns true when this failure is the one that blocks the address.
    @discardableResult
    mutating func recordFailure(_ address: String, now: ContinuousClock.Instant) -> Bool {
        if var entry = windows[address], now < entry.started + window {
            entry.failures += 1
            windows[address] = entry
            return entry.failures == limit
        }
        if windows.count >= Self.maxAddresses {
            windows = windows.filter { now < $0.value.started + window }
            if windows.count >= Self.maxAddresses, let oldest = windows.min(by: { $0.value.started < $1.value.started }) {
                windows[oldest.key] = nil
            }
        }
        windows[address] = Window(started: now, failures: 1)
        return limit == 1
    }
}

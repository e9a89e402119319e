/// Counts the admin listener's open connections against `admin.max_connections`, and decides
/// when a refusal is worth a log line.
///
/// Pure state: `AdminConnections` keeps it under a lock and acts on what it answers. A flood of
/// connections is one line per `logInterval` (with how many were refused since the last one),
/// not one line each; every refusal is counted for `/stats`.
struct AdminConnectionGate: Sendable {
    enum Decision: Equatable {
        case accept
        /// Close the connection. `log` is the number of refusals to report now (this one and
        /// those not reported yet), or nil to stay quiet.
        case refuse(log: Int?)
    }

    let maxConnections: Int
    let logInterval: Duration
    private(set) var open = 0
    /// Every refusal since the start.
    private(set) var refused = 0
    private var unreported = 0
    private var lastReport: ContinuousClock.Instant?

    init(maxConnections: Int, logInterval: Duration) {
        self.maxConnections = maxConnections
        self.logInterval = logInterval
    }

    mutating func opened(now: ContinuousClock.Instant) -> Decision {
        guard open >= maxConnections else {
            open += 1
            return .accept
        }
        refused += 1
        unreported += 1
        if let lastReport, now - lastReport < logInterval { return .refuse(log: nil) }
        lastReport = now
        defer { unreported = 0 }
        return .refuse(log: unreported)
    }

    /// An accepted connection closed.
    mutating func closed() {
        open -= 1
    }
}

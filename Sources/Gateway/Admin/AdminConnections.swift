import Logging
import Synchronization

/// The admin listener's connection count, shared by its accepting loop and every connection's
/// loop (a close happens on the connection's own loop), and read by `/stats`.
final class AdminConnections: Sendable {
    struct Snapshot: Sendable, Equatable {
        var open: Int
        var maxConnections: Int
        var refused: Int
    }

    private let gate: Mutex<AdminConnectionGate>
    private let logger: Logger

    init(maxConnections: Int, logger: Logger, logInterval: Duration = .seconds(10)) {
        self.gate = Mutex(AdminConnectionGate(maxConnections: maxConnections, logInterval: logInterval))
        self.logger = logger
    }

    /// Takes a slot for a new connection; false means close it at once.
    func admit() -> Bool {
        let (decision, snapshot) = gate.withLock { gate in
            (gate.opened(now: .now), Snapshot(open: gate.open, maxConnections: gate.maxConnections, refused: gate.refused))
        }
        switch decision {
        case .accept:
            return true
        case .refuse(let log):
            if let log {
                logger.warning(
                    "admin connection refused",
                    metadata: [
                        "max_connections": "\(snapshot.maxConnections)", "refused": "\(log)",
                        "refused_total": "\(snapshot.refused)",
                    ])
            }
            return false
        }
    }

    /// An admitted connection closed.
    func release() {
        gate.withLock { $0.closed() }
    }

    func snapshot() -> Snapshot {
        gate.withLock { Snapshot(open: $0.open, maxConnections: $0.maxConnections, refused: $0.refused) }
    }
}

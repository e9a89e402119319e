import Synchronization

/// What TLS did on a listener, for stats and metrics: shared by every connection of the listener,
/// across event loops, hence atomics (one relaxed increment per handshake or shutdown, no lock).
final class TLSCounters: Sendable {
    /// The counters at one moment. Each value is read on its own, so a snapshot taken while
    /// handshakes complete may be off by one between fields; fine for stats.
    struct Snapshot: Sendable, Equatable {
        var handshakesCompleted = 0
        var handshakesFailed = 0
        var alpnH2 = 0
        var alpnHTTP11 = 0
        /// Completed handshakes without ALPN: the client offered none, or none the server speaks.
        var alpnNone = 0
        /// Completed handshakes with a protocol other than `h2` or `http/1.1`, when configured.
        var alpnOther = 0
        /// Connections the peer ended with close_notify.
        var cleanShutdowns = 0
        /// Connections the peer ended at the TCP level without close_notify, after the handshake.
        var uncleanShutdowns = 0
    }

    private let handshakesCompleted = Atomic<Int>(0)
    private let handshakesFailed = Atomic<Int>(0)
    private let alpnH2 = Atomic<Int>(0)
    private let alpnHTTP11 = Atomic<Int>(0)
    private let alpnNone = Atomic<Int>(0)
    private let alpnOther = Atomic<Int>(0)
    private let cleanShutdowns = Atomic<Int>(0)
    private let uncleanShutdowns = Atomic<Int>(0)

    init() {}

    /// A handshake finished; `alpn` is the protocol it negotiated.
    func recordHandshakeCompleted(alpn: String?) {
        self.handshakesCompleted.add(1, ordering: .relaxed)
        switch alpn {
        case "h2": self.alpnH2.add(1, ordering: .relaxed)
        case "http/1.1": self.alpnHTTP11.add(1, ordering: .relaxed)
        case nil: self.alpnNone.add(1, ordering: .relaxed)
        default: self.alpnOther.add(1, ordering: .relaxed)
        }
    }

    /// A handshake failed, or the client went away in the middle of one.
    func recordHandshakeFailed() {
        self.handshakesFailed.add(1, ordering: .relaxed)
    }

    /// The peer sent close_notify.
    func recordCleanShutdown() {
        self.cleanShutdowns.add(1, ordering: .relaxed)
    }

    /// The peer's TCP connection ended without close_notify.
    func recordUncleanShutdown() {
        self.uncleanShutdowns.add(1, ordering: .relaxed)
    }

    func snapshot() -> Snapshot {
        Snapshot(
            handshakesCompleted: self.handshakesCompleted.load(ordering: .relaxed),
            handshakesFailed: self.handshakesFailed.load(ordering: .relaxed),
            alpnH2: self.alpnH2.load(ordering: .relaxed),
            alpnHTTP11: self.alpnHTTP11.load(ordering: .relaxed),
            alpnNone: self.alpnNone.load(ordering: .relaxed),
            alpnOther: self.alpnOther.load(ordering: .relaxed),
            cleanShutdowns: self.cleanShutdowns.load(ordering: .relaxed),
            uncleanShutdowns: self.uncleanShutdowns.load(ordering: .relaxed)
        )
    }
}

import Synchronization

/// Counts of the gateway's client traffic by protocol, shared by every event loop and read by
/// `/stats` and `/metrics`. RequestControl counts requests by scope; these say how they came.
final class TrafficCounters: Sendable {
    let http1Requests = Atomic<Int>(0)
    let h2Requests = Atomic<Int>(0)
    let h2Connections = Atomic<Int>(0)
    /// Streams that ended with RST_STREAM (from either side).
    let h2StreamsReset = Atomic<Int>(0)
    /// Connections that got the drain's GOAWAY.
    let h2GoAways = Atomic<Int>(0)
    /// Connections closed for abuse (floods, rapid reset, stalled windows, protocol errors).
    let h2AbusiveConnections = Atomic<Int>(0)

    struct Snapshot: Sendable, Equatable {
        var http1Requests: Int
        var h2Requests: Int
        var h2Connections: Int
        var h2StreamsReset: Int
        var h2GoAways: Int
        var h2AbusiveConnections: Int
    }

    func snapshot() -> Snapshot {
        Snapshot(
            http1Requests: http1Requests.load(ordering: .relaxed),
            h2Requests: h2Requests.load(ordering: .relaxed),
            h2Connections: h2Connections.load(ordering: .relaxed),
            h2StreamsReset: h2StreamsReset.load(ordering: .relaxed),
            h2GoAways: h2GoAways.load(ordering: .relaxed),
            h2AbusiveConnections: h2AbusiveConnections.load(ordering: .relaxed)
        )
    }
}

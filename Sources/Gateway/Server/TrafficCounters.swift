import Synchronization

/// Counts of the gateway's client traffic by protocol, read by `/stats` and `/metrics`.
/// RequestControl counts requests by scope; these say how they came.
///
/// One `Shard` per event loop: a loop only ever adds to its own, so the per-request increment
/// never contends for a cache line with another loop; a read sums the shards.
final class TrafficCounters: Sendable {
    final class Shard: Sendable {
        let http1Requests = Atomic<Int>(0)
        let h2Requests = Atomic<Int>(0)
        let h2Connections = Atomic<Int>(0)
        /// Streams that ended with RST_STREAM (from either side).
        let h2StreamsReset = Atomic<Int>(0)
        /// Connections that got the drain's GOAWAY.
        let h2GoAways = Atomic<Int>(0)
        /// Connections closed for abuse (floods, rapid reset, stalled windows, protocol errors).
        let h2AbusiveConnections = Atomic<Int>(0)
        /// Requests whose body stopped moving for `timeouts.request_body` (408 or cut).
        let requestBodyTimeouts = Atomic<Int>(0)
        /// Upgraded tunnels closed after `timeouts.tunnel_idle` without a byte.
        let tunnelIdleTimeouts = Atomic<Int>(0)
        /// Requests sent again to another backend after theirs failed before answering.
        let retries = Atomic<Int>(0)
        /// Retries not made because the deployment's retry budget was spent.
        let retriesOverBudget = Atomic<Int>(0)

        init() {}
    }

    struct Snapshot: Sendable, Equatable {
        var http1Requests = 0
        var h2Requests = 0
        var h2Connections = 0
        var h2StreamsReset = 0
        var h2GoAways = 0
        var h2AbusiveConnections = 0
        var requestBodyTimeouts = 0
        var tunnelIdleTimeouts = 0
        var retries = 0
        var retriesOverBudget = 0
        var http1Parked = 0
        var http1ParkedTotal = 0
        var http1Resumed = 0
    }

    let shards: [Shard]
    /// Idle HTTP/1.1 connections parked now (see `IdleParking`), ever parked, and ever resumed
    /// (gone back to an event loop with a request). Once per park, not per request: not sharded.
    let http1Parked = Atomic<Int>(0)
    let http1ParkedTotal = Atomic<Int>(0)
    let http1Resumed = Atomic<Int>(0)

    init(shards count: Int = 1) {
        shards = (0..<max(count, 1)).map { _ in Shard() }
    }

    func snapshot() -> Snapshot {
        var total = Snapshot()
        total.http1Parked = http1Parked.load(ordering: .relaxed)
        total.http1ParkedTotal = http1ParkedTotal.load(ordering: .relaxed)
        total.http1Resumed = http1Resumed.load(ordering: .relaxed)
        for shard in shards {
            total.http1Requests += shard.http1Requests.load(ordering: .relaxed)
            total.h2Requests += shard.h2Requests.load(ordering: .relaxed)
            total.h2Connections += shard.h2Connections.load(ordering: .relaxed)
            total.h2StreamsReset += shard.h2StreamsReset.load(ordering: .relaxed)
            total.h2GoAways += shard.h2GoAways.load(ordering: .relaxed)
            total.h2AbusiveConnections += shard.h2AbusiveConnections.load(ordering: .relaxed)
            total.requestBodyTimeouts += shard.requestBodyTimeouts.load(ordering: .relaxed)
            total.tunnelIdleTimeouts += shard.tunnelIdleTimeouts.load(ordering: .relaxed)
            total.retries += shard.retries.load(ordering: .relaxed)
            total.retriesOverBudget += shard.retriesOverBudget.load(ordering: .relaxed)
        }
        return total
    }
}

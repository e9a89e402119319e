import Synchronization
import RequestControl

/// Picks the backend with the fewest requests in flight among those in rotation; ties go
/// round-robin so that an idle deployment still spreads its requests.
///
/// Weights (registered backends may carry one; every other backend weighs 1): the fewest in
/// flight per unit of weight wins (`active / weight`, compared by cross-multiplying), and the
/// round-robin of ties starts at a backend chosen in proportion to its weight, so an idle
/// deployment sends a backend of weight 3 three times the requests of one of weight 1.
///
/// Lock-free: the in-flight counts are RequestControl's atomics and the round-robin cursor is an
/// atomic counter. A backend that a suspend has paused refuses `acquire()`, and is then skipped.
final class LoadBalancer: Sendable {
    struct Backend: Sendable {
        let address: HostPort
        let counter: BackendCounter
        var weight = 1
    }

    let backends: [Backend]
    private let cursor = Atomic<Int>(0)
    /// Running sums of the weights, when they are not all 1: the ticket `t` (mod the total)
    /// starts the scan at the first backend whose sum exceeds `t`.
    private let cumulativeWeights: [Int]?

    convenience init(backends: [(HostPort, BackendCounter)], weights: [HostPort: Int] = [:]) {
        self.init(backends: backends.map { Backend(address: $0.0, counter: $0.1, weight: max(1, weights[$0.0] ?? 1)) })
    }

    /// A balancer over the same backends with a cursor of its own (one per event loop).
    init(backends: [Backend]) {
        self.backends = backends
        if backends.contains(where: { $0.weight != 1 }) {
            var sum = 0
            cumulativeWeights = backends.map { backend in
                sum += backend.weight
                return sum
            }
        } else {
            cumulativeWeights = nil
        }
    }

    /// Where a scan starts: the ticket itself, or with weights the backend its share falls on.
    private func start(ticket: Int) -> Int {
        guard let cumulative = cumulativeWeights, let total = cumulative.last else { return ticket }
        let point = Int(UInt(bitPattern: ticket) % UInt(total))
        return cumulative.firstIndex { $0 > point } ?? 0
    }

    /// Backends the balancer may choose now (in rotation, not ejected).
    var choosable: Int {
        backends.reduce(0) { $0 + ($1.counter.inRotation && !$1.counter.isEjected ? 1 : 0) }
    }

    /// Requests in flight to all of them.
    var active: Int {
        backends.reduce(0) { $0 + $1.counter.active }
    }

    /// Chooses and acquires a backend, skipping the indices in `excluding` (backends that already
    /// failed for this request). Returns nil when none is in rotation and admitting.
    ///
    /// Ejected backends (passive health) are skipped, unless fewer than half of the backends in
    /// rotation are left (Envoy's panic mode) or no other one is: then every backend in rotation
    /// is chosen from, since a restarted backend is often back long before its ejection ends, and
    /// the few left would take every request first. Choosing one does not end its ejection.
    func acquire(excluding: [Int] = []) -> (index: Int, backend: Backend)? {
        let count = backends.count
        guard count > 0 else { return nil }
        var skipped = excluding
        while true {
            let start = self.start(ticket: cursor.wrappingAdd(1, ordering: .relaxed).oldValue)
            // One pass: the best healthy backend, the best of all, and how many are ejected.
            var healthy: Int? = nil
            var healthyActive = 0
            var healthyWeight = 1
            var any: Int? = nil
            var anyActive = 0
            var anyWeight = 1
            var inRotation = 0
            var ejected = 0
            for step in 0..<count {
                let index = Int(UInt(bitPattern: start &+ step) % UInt(count))
                let counter = backends[index].counter
                guard counter.inRotation else { continue }
                inRotation += 1
                let isEjected = counter.isEjected
                if isEjected { ejected += 1 }
                if skipped.contains(index) { continue }
                let active = counter.active
                let weight = backends[index].weight
                // active / weight < best / bestWeight, without division.
                if any == nil || active * anyWeight < anyActive * weight {
                    any = index
                    anyActive = active
                    anyWeight = weight
                }
                if !isEjected, healthy == nil || active * healthyWeight < healthyActive * weight {
                    healthy = index
                    healthyActive = active
                    healthyWeight = weight
                }
            }
            let panic = ejected * 2 > inRotation
            guard let best = (panic ? any : healthy) ?? any else { return nil }
            if backends[best].counter.acquire() {
                return (best, backends[best])
            }
            skipped.append(best)
        }
    }
}

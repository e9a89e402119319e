import Synchronization
import RequestControl

/// Picks the backend with the fewest requests in flight among those in rotation; ties go
/// round-robin so that an idle deployment still spreads its requests.
///
/// Lock-free: the in-flight counts are RequestControl's atomics and the round-robin cursor is an
/// atomic counter. A backend that a suspend has paused refuses `acquire()`, and is then skipped.
final class LoadBalancer: Sendable {
    struct Backend: Sendable {
        let address: HostPort
        let counter: BackendCounter
    }

    let backends: [Backend]
    private let cursor = Atomic<Int>(0)

    init(backends: [(HostPort, BackendCounter)]) {
        self.backends = backends.map { Backend(address: $0.0, counter: $0.1) }
    }

    /// A balancer over the same backends with a cursor of its own (one per event loop).
    init(backends: [Backend]) {
        self.backends = backends
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
            let start = cursor.wrappingAdd(1, ordering: .relaxed).oldValue
            // One pass: the best healthy backend, the best of all, and how many are ejected.
            var healthy: Int? = nil
            var healthyActive = Int.max
            var any: Int? = nil
            var anyActive = Int.max
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
                if active < anyActive {
                    any = index
                    anyActive = active
                }
                if !isEjected, active < healthyActive {
                    healthy = index
                    healthyActive = active
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

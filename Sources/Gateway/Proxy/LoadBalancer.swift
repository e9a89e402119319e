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
    /// Ejected backends (passive health) are skipped while any other is left; when none is, they
    /// are tried rather than failing the request at once (Envoy's panic mode): a restarted
    /// backend is often back long before its ejection ends. Using one does not end its ejection.
    func acquire(excluding: [Int] = []) -> (index: Int, backend: Backend)? {
        if let chosen = acquire(excluding: excluding, ejected: false) { return chosen }
        return acquire(excluding: excluding, ejected: true)
    }

    private func acquire(excluding: [Int], ejected allowEjected: Bool) -> (index: Int, backend: Backend)? {
        let count = backends.count
        guard count > 0 else { return nil }
        var skipped = excluding
        while true {
            let start = cursor.wrappingAdd(1, ordering: .relaxed).oldValue
            var best: Int? = nil
            var bestActive = Int.max
            for step in 0..<count {
                let index = Int(UInt(bitPattern: start &+ step) % UInt(count))
                if skipped.contains(index) { continue }
                let counter = backends[index].counter
                guard counter.inRotation, allowEjected || !counter.isEjected else { continue }
                let active = counter.active
                if active < bestActive {
                    best = index
                    bestActive = active
                }
            }
            guard let best else { return nil }
            if backends[best].counter.acquire() {
                return (best, backends[best])
            }
            skipped.append(best)
        }
    }
}

import Synchronization

/// Bounds the retries of one deployment in flight at a time, so that retries cannot multiply an
/// outage: at most `percent` of the deployment's requests in flight may be retries, and never
/// fewer than `minimum` (a quiet deployment can still retry), as Envoy's retry budget does.
///
/// Lock-free; a slot taken is given back when the retried attempt releases its backend.
final class RetryBudget: Sendable {
    let percent: Int
    let minimum: Int
    private let inFlight = Atomic<Int>(0)

    init(percent: Int = 20, minimum: Int = 3) {
        self.percent = percent
        self.minimum = minimum
    }

    /// Takes a slot when the budget allows one more retry next to `active` requests in flight.
    func tryAcquire(active: Int) -> Bool {
        let allowed = max(minimum, active * percent / 100)
        var current = inFlight.load(ordering: .relaxed)
        while current < allowed {
            let (exchanged, original) = inFlight.compareExchange(expected: current, desired: current + 1, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
        return false
    }

    func release() {
        inFlight.wrappingSubtract(1, ordering: .relaxed)
    }

    var retriesInFlight: Int { inFlight.load(ordering: .relaxed) }
}

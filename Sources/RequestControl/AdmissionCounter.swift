import Synchronization

/// One in-flight counter (gateway, deployment, entry point or backend): the paused bit, the
/// draining bit and the active count share ONE atomic word.
///
/// Because the paused bit and the count are one word, admission is a single compare-and-swap
/// that either sees the bit (and refuses) or increments a count the drain is still waiting for.
/// No request can slip in after a drain was reported, which WildFly's check-the-flag, increment,
/// re-check-the-flag sequence allows.
///
/// Admission uses a CAS loop rather than `fetch-add` + roll-back: a fetch-add would push the
/// count over the limit for an instant and refuse concurrent requests that should have been
/// admitted, and would make a drained count bounce off zero. The CAS loop is exact; uncontended
/// it costs what a fetch-add does (one locked instruction on x86, one LL/SC or LSE CAS on ARM).
///
/// The decrement that brings a paused counter to zero wakes the drain waiters (the slow path,
/// a mutex of waiters).
///
/// The limit is an atomic of its own, so a configuration reload can change it under live
/// traffic without replacing the counter (and losing its count). `acquire` reads it with one
/// relaxed load: a limit is a policy, not a synchronisation point, so seeing the new value a
/// few requests late is harmless, while the exactness of the count itself still comes from
/// the CAS on `word`.
final class AdmissionCounter: Sendable {
    /// Set while the scope is SUSPENDING or SUSPENDED: admission refuses.
    static let pausedBit: UInt64 = 1 << 63
    /// Set from PRE_SUSPEND until resume: `isDraining` / `!inRotation`; admission ignores it.
    static let drainingBit: UInt64 = 1 << 62
    static let countMask: UInt64 = (1 << 62) - 1

    enum Acquisition {
        case admitted
        case paused
        case full
    }

    private let word: Atomic<UInt64>
    /// The in-flight limit (countMask when unlimited). Next to `word`, so the load in `acquire`
    /// hits the cache line the CAS needs anyway.
    private let limitWord: Atomic<UInt64>
    private let waiters: Mutex<[SuspendPhase]>
    /// Keeps each counter's object over 128 bytes, so the hot words of two counters never share
    /// a cache line (no false sharing between, e.g., two backends picked by two threads). A
    /// cheap precaution: on the 2-vCPU build VM the benchmark could not show a difference
    /// either way (the other contention and the VM noise dominate).
    private let padding: InlineArray<12, UInt64> = InlineArray(repeating: 0)

    /// `limit`: nil = unlimited; negative counts as 0 (refuse all).
    init(limit: Int?) {
        self.word = Atomic(0)
        self.limitWord = Atomic(Self.encode(limit))
        self.waiters = Mutex([])
    }

    private static func encode(_ limit: Int?) -> UInt64 {
        limit.map { UInt64(max(0, $0)) } ?? countMask
    }

    /// The in-flight limit now (countMask when unlimited).
    var limit: UInt64 { limitWord.load(ordering: .relaxed) }

    /// Changes the limit in place, same encoding as `init`. Requests in flight keep their
    /// slots: a limit lowered below the current count refuses new admissions until enough of
    /// them complete; nothing is revoked and no waiter needs waking.
    func setLimit(_ limit: Int?) {
        limitWord.store(Self.encode(limit), ordering: .relaxed)
    }

    /// Takes one slot unless paused or full. Lock-free, exact against the limit it read.
    @inline(__always)
    func acquire() -> Acquisition {
        let limit = limitWord.load(ordering: .relaxed)
        var current = word.load(ordering: .relaxed)
        while true {
            if current & Self.pausedBit != 0 { return .paused }
            if current & Self.countMask >= limit { return .full }
            let (exchanged, original) = word.weakCompareExchange(
                expected: current, desired: current &+ 1,
                successOrdering: .acquiring, failureOrdering: .relaxed)
            if exchanged { return .admitted }
            current = original
        }
    }

    /// Gives one slot back; wakes the drain waiters when this empties a paused counter.
    @inline(__always)
    func release() {
        let new = word.wrappingSubtract(1, ordering: .releasing).newValue
        if new & (Self.pausedBit | Self.countMask) == Self.pausedBit {
            wakeDrainWaiters()
        }
    }

    /// In-flight count.
    var active: Int { Int(truncatingIfNeeded: word.load(ordering: .relaxed) & Self.countMask) }

    /// Whether the draining bit is set (one relaxed load).
    @inline(__always)
    var isDraining: Bool { word.load(ordering: .relaxed) & Self.drainingBit != 0 }

    /// Paused and empty: the drain is complete.
    var isDrained: Bool {
        word.load(ordering: .acquiring) & (Self.pausedBit | Self.countMask) == Self.pausedBit
    }

    /// Sets the draining bit.
    func markDraining() {
        word.bitwiseOr(Self.drainingBit, ordering: .relaxed)
    }

    /// Sets the paused bit (and the draining bit); from now on admission refuses. Wakes the
    /// waiters if the count is already zero.
    func pause() {
        let new = word.bitwiseOr(Self.pausedBit | Self.drainingBit, ordering: .acquiringAndReleasing).newValue
        if new & Self.countMask == 0 { wakeDrainWaiters() }
    }

    /// Clears the paused and draining bits.
    func unpause() {
        word.bitwiseAnd(~(Self.pausedBit | Self.drainingBit), ordering: .acquiringAndReleasing)
    }

    /// Registers `phase` to be completed when the counter is drained (paused and empty), or
    /// completes it now if it already is. Register-then-recheck under the waiters' mutex: the
    /// decrement to zero happens before its waker takes the mutex, so either the waker sees the
    /// phase or this recheck sees the zero; no wake-up is lost.
    func notifyWhenDrained(_ phase: SuspendPhase) {
        let drainedNow = waiters.withLock { waiters -> Bool in
            if isDrained { return true }
            waiters.append(phase)
            return false
        }
        if drainedNow { phase.finish(.completed) }
    }

    /// Forgets a phase that ended otherwise (timeout, cancel).
    func forget(_ phase: SuspendPhase) {
        waiters.withLock { waiters in waiters.removeAll { $0 === phase } }
    }

    private func wakeDrainWaiters() {
        let woken = waiters.withLock { waiters -> [SuspendPhase] in
            defer { waiters.removeAll() }
            return waiters
        }
        for phase in woken { phase.finish(.completed) }
    }
}

import Synchronization

/// The suspend state machine of one scope, around the scope's counter.
///
/// State changes and the counter's bits change together under one mutex (the slow path), so a
/// resume can never interleave between "still not cancelled?" and "set the paused bit" of a
/// suspend. The state is also published in an atomic, so `state(of:)` and snapshots read it
/// without the lock.
final class ScopeControl: Sendable {
    let scope: SuspendScope
    let counter: AdmissionCounter
    private let relay: StateChangeRelay
    private let published: Atomic<UInt8>
    private let status: Mutex<Status>

    private struct Status {
        var state: SuspendState = .running
        /// Suspend calls in progress; a resume removes (cancels) them all.
        var attempts: [SuspendAttempt] = []
    }

    private static let states = SuspendState.allCases

    init(scope: SuspendScope, counter: AdmissionCounter, relay: StateChangeRelay) {
        self.scope = scope
        self.counter = counter
        self.relay = relay
        self.published = Atomic(0)
        self.status = Mutex(Status())
    }

    var state: SuspendState {
        Self.states[Int(published.load(ordering: .acquiring))]
    }

    /// Changes the state, publishes it and reports it; call under the mutex, so reports come
    /// in the order the changes happened.
    private func transition(_ status: inout Status, to state: SuspendState) {
        guard status.state != state else { return }
        status.state = state
        published.store(UInt8(Self.states.firstIndex(of: state)!), ordering: .releasing)
        relay.report(scope, state)
    }

    /// Registers a suspend call. Returns true when it leads the suspend (the scope was RUNNING
    /// and is now PRE_SUSPEND); false when it joins one in progress or a finished one.
    func enterSuspend(_ attempt: SuspendAttempt) -> Bool {
        status.withLock { status in
            status.attempts.append(attempt)
            guard status.state == .running else { return false }
            counter.markDraining()
            transition(&status, to: .preSuspend)
            return true
        }
    }

    /// PRE_SUSPEND -> SUSPENDING and the paused bit, unless a resume cancelled `attempt`.
    func startSuspending(_ attempt: SuspendAttempt) -> Bool {
        status.withLock { status in
            guard status.attempts.contains(where: { $0 === attempt }) else { return false }
            counter.pause()
            transition(&status, to: .suspending)
            return true
        }
    }

    /// SUSPENDING -> SUSPENDED and forgets `attempt`, unless a resume cancelled it.
    func finishSuspend(_ attempt: SuspendAttempt) -> Bool {
        status.withLock { status in
            guard let index = status.attempts.firstIndex(where: { $0 === attempt }) else { return false }
            status.attempts.remove(at: index)
            transition(&status, to: .suspended)
            return true
        }
    }

    /// Forgets a joining `attempt`; false if a resume cancelled it.
    func leave(_ attempt: SuspendAttempt) -> Bool {
        status.withLock { status in
            guard let index = status.attempts.firstIndex(where: { $0 === attempt }) else { return false }
            status.attempts.remove(at: index)
            return true
        }
    }

    /// Back to RUNNING: clears the bits and cancels every suspend in progress. Returns the
    /// previous state.
    func resume() -> SuspendState {
        let (previous, cancelled) = status.withLock { status in
            let previous = status.state
            let cancelled = status.attempts
            status.attempts = []
            counter.unpause()
            transition(&status, to: .running)
            return (previous, cancelled)
        }
        for attempt in cancelled { attempt.cancel() }
        return previous
    }
}

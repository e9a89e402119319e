import Synchronization

/// One `suspend` call in progress, so a `resume` can cancel whichever phase it is waiting in.
final class SuspendAttempt: Sendable {
    private struct State {
        var cancelled = false
        var phase: SuspendPhase?
    }

    private let state = Mutex(State())

    /// Makes `phase` the one a cancel ends; ends it at once if the attempt was already cancelled.
    func enter(_ phase: SuspendPhase) {
        let cancelled = state.withLock { state in
            state.phase = phase
            return state.cancelled
        }
        if cancelled { phase.finish(.cancelled) }
    }

    /// Cancels the attempt: its current phase and any later one end as cancelled.
    func cancel() {
        let phase = state.withLock { state in
            state.cancelled = true
            return state.phase
        }
        phase?.finish(.cancelled)
    }
}

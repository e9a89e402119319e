import Synchronization

/// One wait of a suspend (pre-suspend activities, drain, suspended activities) that whoever
/// comes first ends: the work finishing, a timeout, or a resume cancelling the suspend.
///
/// Later `finish` calls are ignored, so the racing parties need no coordination.
final class SuspendPhase: Sendable {
    enum Outcome: Sendable, Equatable {
        case completed
        case timedOut
        case cancelled
    }

    private struct State {
        var outcome: Outcome?
        var continuation: CheckedContinuation<Outcome, Never>?
    }

    private let state = Mutex(State())

    /// Ends the phase with `outcome` unless it already ended.
    func finish(_ outcome: Outcome) {
        let continuation = state.withLock { state -> CheckedContinuation<Outcome, Never>? in
            guard state.outcome == nil else { return nil }
            state.outcome = outcome
            defer { state.continuation = nil }
            return state.continuation
        }
        continuation?.resume(returning: outcome)
    }

    /// Waits for the end of the phase.
    private func wait() async -> Outcome {
        await withCheckedContinuation { continuation in
            let done = state.withLock { state -> Outcome? in
                if let outcome = state.outcome { return outcome }
                state.continuation = continuation
                return nil
            }
            if let done { continuation.resume(returning: done) }
        }
    }

    /// Waits for the end of the phase, ending it as timed out after `timeout` (nil: no limit).
    /// The timer is a `Task.sleep` cancelled as soon as the phase ends, so nothing polls. If the
    /// calling task is cancelled the phase ends as timed out: the caller stops waiting.
    func wait(timeout: Duration?) async -> Outcome {
        await withTaskCancellationHandler {
            guard let timeout else { return await wait() }
            return await withTaskGroup(of: Void.self, returning: Outcome.self) { group in
                group.addTask {
                    do {
                        try await Task.sleep(for: timeout)
                        self.finish(.timedOut)
                    } catch {}
                }
                let outcome = await wait()
                group.cancelAll()
                return outcome
            }
        } onCancel: {
            finish(.timedOut)
        }
    }
}

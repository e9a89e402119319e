import Synchronization

/// A value that is set once and awaited by any number of tasks; later `complete` calls are
/// ignored. Used to race a process exit against a timeout without a task group (a group would
/// wait for the loser, and an exit wait does not end on cancellation).
final class Completion<Value: Sendable>: Sendable {
    private enum State {
        case waiting([CheckedContinuation<Value, Never>])
        case done(Value)
    }

    private let state = Mutex<State>(.waiting([]))

    /// Sets the value unless one is set already; true if this call set it.
    @discardableResult
    func complete(_ value: Value) -> Bool {
        let waiters: [CheckedContinuation<Value, Never>]? = state.withLock { state in
            guard case .waiting(let waiters) = state else { return nil }
            state = .done(value)
            return waiters
        }
        guard let waiters else { return false }
        for waiter in waiters { waiter.resume(returning: value) }
        return true
    }

    func wait() async -> Value {
        await withCheckedContinuation { continuation in
            let value: Value? = state.withLock { state in
                switch state {
                case .done(let value):
                    return value
                case .waiting(var waiters):
                    waiters.append(continuation)
                    state = .waiting(waiters)
                    return nil
                }
            }
            if let value { continuation.resume(returning: value) }
        }
    }

    /// The value if set.
    var value: Value? {
        state.withLock { state in
            if case .done(let value) = state { return value }
            return nil
        }
    }
}

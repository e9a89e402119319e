import Dispatch
import Synchronization

/// One value handed from one thread to another that blocks for it: a spawn's result from the
/// spawner's dedicated thread, a keeper's answer to a worker's spawn order. For code that must
/// answer synchronously (a spawn returns the process); async code awaits a `Completion`.
public final class Handoff<Value: Sendable>: Sendable {
    private let value = Mutex<Value?>(nil)
    private let ready = DispatchSemaphore(value: 0)

    public init() {}

    /// Hands the value over; only the first call counts.
    public func finish(_ outcome: Value) {
        let first = value.withLock { current in
            guard current == nil else { return false }
            current = outcome
            return true
        }
        if first { ready.signal() }
    }

    /// Blocks until the value is there.
    public func wait() -> Value {
        ready.wait()
        return value.withLock { $0! }
    }

    /// Blocks at most `timeout`; nil if the value did not come.
    public func wait(timeout: Duration) -> Value? {
        let (seconds, attoseconds) = timeout.components
        let nanoseconds = Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000)
        guard ready.wait(timeout: .now() + .nanoseconds(nanoseconds)) == .success else { return nil }
        return value.withLock { $0 }
    }
}

import Synchronization

/// Holds the controller's `onStateChange` callback so every scope can report through it, and it
/// can be set after the controller was built (the logger may come later than the counters).
final class StateChangeRelay: Sendable {
    typealias Callback = @Sendable (SuspendScope, SuspendState) -> Void

    private let callback: Mutex<Callback?>

    init(_ callback: Callback?) {
        self.callback = Mutex(callback)
    }

    var current: Callback? {
        get { callback.withLock { $0 } }
        set { callback.withLock { $0 = newValue } }
    }

    func report(_ scope: SuspendScope, _ state: SuspendState) {
        current?(scope, state)
    }
}

import Synchronization
import Testing

@testable import RequestControl

/// Delivers every state change as it happens, so a test waits for the transition itself.
final class StateEvents: Sendable {
    let stream: AsyncStream<Event>
    private let continuation: AsyncStream<Event>.Continuation
    private let log = Mutex<[Event]>([])

    struct Event: Sendable, Equatable {
        var scope: SuspendScope
        var state: SuspendState
    }

    init(_ controller: RequestController) {
        (stream, continuation) = AsyncStream.makeStream(of: Event.self)
        controller.onStateChange = { [self] scope, state in
            self.log.withLock { $0.append(Event(scope: scope, state: state)) }
            self.continuation.yield(Event(scope: scope, state: state))
        }
    }

    /// Waits until `scope` enters `state` (events before it are skipped).
    func wait(for scope: SuspendScope, _ state: SuspendState) async {
        for await event in stream where event.scope == scope && event.state == state {
            return
        }
    }

    var all: [Event] { log.withLock { $0 } }
}

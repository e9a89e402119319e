import Foundation
import Synchronization

/// The worker's events: the last ones kept for a page that just connected, and every new one
/// handed to each `/events` subscriber in order.
///
/// Publishing never waits: each subscriber has a bounded buffer, and one that cannot keep up
/// loses its oldest undelivered events (it sees a gap in `seq`) rather than slowing the
/// supervisor or the proxy down.
final class GatewayEventLog: Sendable {
    /// Kept for new subscribers (the page's "last events").
    static let kept = 200
    /// Undelivered events one subscriber may have before its oldest are dropped.
    static let subscriberBuffer = 1_000

    private struct State {
        var nextSeq = 1
        var recent: [GatewayEvent] = []
        var subscribers: [Int: AsyncStream<GatewayEvent>.Continuation] = [:]
        var nextSubscriber = 0
        var finished = false
    }

    private let state = Mutex(State())

    @discardableResult
    func publish(_ type: String, _ message: String, _ fields: [String: EventValue] = [:]) -> GatewayEvent {
        state.withLock { state in
            let event = GatewayEvent(seq: state.nextSeq, time: Date(), type: type, message: message, fields: fields)
            state.nextSeq += 1
            state.recent.append(event)
            if state.recent.count > Self.kept { state.recent.removeFirst(state.recent.count - Self.kept) }
            for continuation in state.subscribers.values { continuation.yield(event) }
            return event
        }
    }

    /// The events kept so far (after `seq`, when a reconnecting client says what it saw last)
    /// and a stream of every later one; the stream ends at `finish()` or when dropped.
    func subscribe(after seq: Int? = nil) -> (recent: [GatewayEvent], events: AsyncStream<GatewayEvent>) {
        let (stream, continuation) = AsyncStream<GatewayEvent>.makeStream(bufferingPolicy: .bufferingNewest(Self.subscriberBuffer))
        let recent: [GatewayEvent] = state.withLock { state in
            if state.finished {
                continuation.finish()
            } else {
                let id = state.nextSubscriber
                state.nextSubscriber += 1
                state.subscribers[id] = continuation
                continuation.onTermination = { [weak self] _ in
                    _ = self?.state.withLock { $0.subscribers.removeValue(forKey: id) }
                }
            }
            return state.recent.filter { $0.seq > (seq ?? 0) }
        }
        return (recent, stream)
    }

    var subscriberCount: Int { state.withLock { $0.subscribers.count } }

    /// The worker is about to close its admin connections: every stream ends, so the pages
    /// see the close (and reconnect to the next worker).
    func finish() {
        let subscribers = state.withLock { state in
            state.finished = true
            defer { state.subscribers = [:] }
            return Array(state.subscribers.values)
        }
        for continuation in subscribers { continuation.finish() }
    }
}

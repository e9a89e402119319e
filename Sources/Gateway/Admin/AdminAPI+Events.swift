import Foundation
import Synchronization

/// `GET /events`: server-sent events. First a `snapshot` (health, stats, processes and the
/// events kept so far), then every event as it happens and a `state` about every second, until
/// the client goes or the worker closes its admin connections.
extension AdminAPI {
    /// How often the page gets fresh numbers.
    static let stateInterval: Duration = .seconds(1)

    func eventStream(_ request: AdminRequest) async -> AdminResponse {
        if let unknown = request.query.keys.sorted().first(where: { $0 != "state" }) {
            return .error(400, "unknown parameter '\(unknown)'; expected state (0 to leave out the periodic state)")
        }
        let withState = request.query["state"] != "0"
        // A reconnecting EventSource says what it saw last; it gets only what came after.
        let lastSeen = request.header("last-event-id").flatMap { Int($0) }
        let subscription = events.subscribe(after: lastSeen)
        let first = await stateJSON(recent: subscription.recent)
        let api = self
        let (body, continuation) = AsyncStream<[UInt8]>.makeStream(bufferingPolicy: .bufferingNewest(256))
        continuation.yield(Self.message(event: "snapshot", id: subscription.recent.last?.seq, data: first))
        let relay = Task {
            for await event in subscription.events {
                continuation.yield(Self.message(event: event.type, id: event.seq, data: AdminJSONEncoding.encode(event, pretty: false)))
            }
            continuation.finish()
        }
        let ticker = Task {
            while !Task.isCancelled, withState {
                try? await Task.sleep(for: Self.stateInterval)
                if Task.isCancelled { break }
                continuation.yield(Self.message(event: "state", id: nil, data: await api.sharedState()))
            }
        }
        continuation.onTermination = { _ in
            relay.cancel()
            ticker.cancel()
        }
        var response = AdminResponse(status: 200, contentType: "text/event-stream; charset=utf-8", body: [])
        response.headers.append(("cache-control", "no-store"))
        response.stream = body
        return response
    }

    /// The `state` document, made at most once per interval whoever asks: every open page gets
    /// the same one, and ten pages cost one walk of the process table, not ten.
    func sharedState() async -> Data {
        let now = ContinuousClock.now
        if let cached = stateCache.value(newerThan: now - Self.stateInterval / 2) { return cached }
        let fresh = await stateJSON(recent: nil)
        stateCache.store(fresh, at: now)
        return fresh
    }

    /// `{"health":…,"stats":…,"processes":…[,"recent":[…]]}` on one line.
    func stateJSON(recent: [GatewayEvent]?) async -> Data {
        var json = Data("{\"health\":".utf8)
        json += AdminJSONEncoding.encode(healthAnswer(), pretty: false)
        json += Data(",\"stats\":".utf8)
        json += AdminJSONEncoding.encode(statsDocument(), pretty: false)
        json += Data(",\"processes\":".utf8)
        json += AdminJSONEncoding.encode(await processTable(), pretty: false)
        if let recent {
            json += Data(",\"recent\":".utf8)
            json += AdminJSONEncoding.encode(Array(recent.suffix(50)), pretty: false)
        }
        json += Data("}".utf8)
        return json
    }

    /// One SSE message: `id:` (when it has one), `event:`, `data:` and the blank line.
    static func message(event: String, id: Int?, data: Data) -> [UInt8] {
        var text = ""
        if let id { text += "id: \(id)\n" }
        text += "event: \(event)\ndata: "
        return Array(text.utf8) + Array(data) + Array("\n\n".utf8)
    }
}

/// The last `state` document and when it was made (see `AdminAPI.sharedState`).
final class StateDocumentCache: Sendable {
    private let entry = Mutex<(data: Data, at: ContinuousClock.Instant)?>(nil)

    func value(newerThan limit: ContinuousClock.Instant) -> Data? {
        entry.withLock { entry in
            guard let entry, entry.at >= limit else { return nil }
            return entry.data
        }
    }

    func store(_ data: Data, at time: ContinuousClock.Instant) {
        entry.withLock { $0 = (data, time) }
    }
}

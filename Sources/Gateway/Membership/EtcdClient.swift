import Foundation
import Membership
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// etcd's v3 API through its JSON gateway: `POST /v3/...` on the client port, keys and values in
/// base64, int64s as strings.
///
/// Written on NIO's HTTP/1.1 client codec rather than async-http-client or grpc-swift: the gateway
/// needs six calls and one streamed response, both of which NIO's codec already does, and either
/// library would add minutes to every fresh build. gRPC would also need generated protobuf code.
///
/// Every call opens its own connection (calls are rare: a read after a lost watch, a lease
/// keep-alive a second), tries the endpoints in turn starting with the one that last answered, and
/// is bounded by `dialTimeout` to connect and `requestTimeout` in all.
final class EtcdClient: Sendable {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// One watch response: events in order, or the end of the watch because etcd compacted past it.
    enum WatchMessage: Sendable, Equatable {
        case created(revision: Int64)
        case events([MembershipView.Event], revision: Int64)
        /// The watch cannot go on from where it was: read again.
        case compacted(revision: Int64)
    }

    let endpoints: [HostPort]
    private let group: any EventLoopGroup
    private let dialTimeout: TimeAmount
    private let requestTimeout: TimeAmount
    private let preferred = Atomic<Int>(0)

    init(endpoints: [HostPort], group: any EventLoopGroup, dialTimeout: Duration, requestTimeout: Duration = .seconds(5)) {
        precondition(!endpoints.isEmpty, "an etcd client needs at least one endpoint")
        self.endpoints = endpoints
        self.group = group
        self.dialTimeout = TimeAmount(dialTimeout)
        self.requestTimeout = TimeAmount(requestTimeout)
    }

    // MARK: Calls

    /// Every key under `prefix` and the revision the read saw.
    func range(prefix: String) async throws -> (revision: Int64, entries: [MembershipView.KeyValue]) {
        let reply = try await call("/v3/kv/range", ["key": Self.base64(prefix), "range_end": Self.base64(Self.rangeEnd(prefix))])
        let revision = Self.int64(Self.object(reply["header"])["revision"])
        let entries = (reply["kvs"] as? [Any] ?? []).compactMap { Self.keyValue($0) }
        return (revision, entries)
    }

    /// Writes `value` under `lease` (0: none), or keeping the key's current lease with
    /// `keepLease`; the revision of the write.
    @discardableResult
    func put(key: String, value: String, lease: Int64 = 0, keepLease: Bool = false) async throws -> Int64 {
        var body: [String: Any] = ["key": Self.base64(key), "value": Self.base64(value)]
        if lease != 0 { body["lease"] = String(lease) }
        if keepLease { body["ignore_lease"] = true }
        let reply = try await call("/v3/kv/put", body)
        return Self.int64(Self.object(reply["header"])["revision"])
    }

    /// Writes `value` under `lease` only if the key does not exist (a transaction comparing its
    /// create revision with 0): whether it was written. A lock or a slot taken this way is held
    /// until it is deleted or the lease ends.
    func createIfAbsent(key: String, value: String, lease: Int64) async throws -> Bool {
        let reply = try await call("/v3/kv/txn", [
            "compare": [["key": Self.base64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"]],
            "success": [["request_put": ["key": Self.base64(key), "value": Self.base64(value), "lease": String(lease)]]],
        ])
        return reply["succeeded"] as? Bool ?? false
    }

    /// One key's value and lease, nil when it does not exist.
    func get(key: String) async throws -> MembershipView.KeyValue? {
        let reply = try await call("/v3/kv/range", ["key": Self.base64(key)])
        return (reply["kvs"] as? [Any] ?? []).compactMap { Self.keyValue($0) }.first
    }

    func delete(key: String) async throws {
        _ = try await call("/v3/kv/deleterange", ["key": Self.base64(key)])
    }

    /// A new lease with `ttl` seconds; its id.
    func grantLease(ttl: Int) async throws -> Int64 {
        let reply = try await call("/v3/lease/grant", ["TTL": String(ttl)])
        let id = Self.int64(reply["ID"])
        guard id != 0 else { throw Failure(description: "etcd granted no lease: \(reply["error"] ?? "no ID in the reply")") }
        return id
    }

    /// Renews a lease once; the seconds it has left, 0 when it is gone.
    func keepAlive(lease: Int64) async throws -> Int64 {
        let reply = try await call("/v3/lease/keepalive", ["ID": String(lease)])
        return Self.int64(Self.object(reply["result"])["TTL"])
    }

    func revoke(lease: Int64) async throws {
        _ = try await call("/v3/lease/revoke", ["ID": String(lease)])
    }

    /// Watches every key under `prefix` from `revision` (inclusive). The stream ends with an error
    /// when the connection does; the caller reads again and watches anew.
    func watch(prefix: String, fromRevision revision: Int64) -> AsyncThrowingStream<WatchMessage, any Error> {
        let body: [String: Any] = [
            "create_request": [
                "key": Self.base64(prefix), "range_end": Self.base64(Self.rangeEnd(prefix)),
                "start_revision": String(revision), "progress_notify": true,
            ] as [String: Any],
        ]
        let (stream, continuation) = AsyncThrowingStream<WatchMessage, any Error>.makeStream()
        let task = Task {
            do {
                let lines = try await self.open("/v3/watch", body, streaming: true)
                for try await line in lines {
                    guard let message = try Self.watchMessage(line) else { continue }
                    continuation.yield(message)
                    if case .compacted = message { break }
                }
                continuation.finish(throwing: Failure(description: "the watch ended"))
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    // MARK: HTTP

    private func call(_ path: String, _ body: [String: Any]) async throws -> [String: Any] {
        let lines = try await open(path, body, streaming: false)
        var data = [UInt8]()
        for try await chunk in lines { data += chunk }
        guard let reply = try JSONSerialization.jsonObject(with: Data(data)) as? [String: Any] else {
            throw Failure(description: "etcd answered \(path) with something other than a JSON object")
        }
        if let error = reply["error"] as? String ?? reply["message"] as? String, reply["header"] == nil {
            throw Failure(description: "etcd refused \(path): \(error)")
        }
        return reply
    }

    /// POSTs `body` to the first endpoint that takes the connection. Streaming: the response body
    /// comes line by line (etcd ends each watch response with a newline), without the overall
    /// timeout; otherwise in chunks, bounded by `requestTimeout`.
    private func open(_ path: String, _ body: [String: Any], streaming: Bool) async throws -> AsyncThrowingStream<[UInt8], any Error> {
        let payload = try JSONSerialization.data(withJSONObject: body)
        let start = preferred.load(ordering: .relaxed)
        var failures: [String] = []
        for offset in 0..<endpoints.count {
            let index = (start + offset) % endpoints.count
            let endpoint = endpoints[index]
            let (stream, continuation) = AsyncThrowingStream<[UInt8], any Error>.makeStream()
            let receiver = EtcdResponseReceiver(continuation: continuation, splitLines: streaming, path: path, endpoint: endpoint.description)
            do {
                let channel = try await ClientBootstrap(group: group)
                    .connectTimeout(dialTimeout)
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHTTPClientHandlers()
                            try channel.pipeline.syncOperations.addHandler(receiver)
                        }
                    }
                    .connect(host: endpoint.host, port: endpoint.port)
                    .get()
                preferred.store(index, ordering: .relaxed)
                var timer: Scheduled<Void>?
                if !streaming {
                    let timeout = requestTimeout
                    timer = channel.eventLoop.scheduleTask(in: timeout) {
                        receiver.fail(Failure(description: "etcd at \(endpoint) did not answer \(path) within \(timeout)"), channel: channel)
                    }
                }
                continuation.onTermination = { [timer] _ in
                    timer?.cancel()
                    channel.close(promise: nil)
                }
                var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: path)
                head.headers.add(name: "Host", value: endpoint.description)
                head.headers.add(name: "Content-Type", value: "application/json")
                head.headers.add(name: "Content-Length", value: String(payload.count))
                channel.write(HTTPClientRequestPart.head(head), promise: nil)
                channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: payload))), promise: nil)
                channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
                return stream
            } catch {
                failures.append("\(endpoint): \(error)")
            }
        }
        throw Failure(description: "no etcd endpoint took the connection (\(failures.joined(separator: "; ")))")
    }

    // MARK: JSON

    static func base64(_ text: String) -> String { Data(text.utf8).base64EncodedString() }

    /// The end of the range of keys that start with `prefix`: its last byte plus one.
    static func rangeEnd(_ prefix: String) -> String {
        var bytes = Array(prefix.utf8)
        while let last = bytes.last {
            if last < 0xFF {
                bytes[bytes.count - 1] = last + 1
                return String(decoding: bytes, as: UTF8.self)
            }
            bytes.removeLast()
        }
        return "\0"
    }

    static func object(_ any: Any?) -> [String: Any] { any as? [String: Any] ?? [:] }

    static func int64(_ any: Any?) -> Int64 {
        if let text = any as? String { return Int64(text) ?? 0 }
        if let number = any as? NSNumber { return number.int64Value }
        return 0
    }

    static func bytes(_ any: Any?) -> [UInt8] {
        guard let text = any as? String, let data = Data(base64Encoded: text) else { return [] }
        return Array(data)
    }

    static func keyValue(_ any: Any) -> MembershipView.KeyValue? {
        let kv = object(any)
        let key = bytes(kv["key"])
        guard !key.isEmpty else { return nil }
        return .init(key: String(decoding: key, as: UTF8.self), value: bytes(kv["value"]), modRevision: int64(kv["mod_revision"]), lease: int64(kv["lease"]))
    }

    /// One line of a watch's response.
    static func watchMessage(_ line: [UInt8]) throws -> WatchMessage? {
        guard !line.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D }) else { return nil }
        guard let outer = try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
            throw Failure(description: "a watch line that is not a JSON object")
        }
        if let error = outer["error"] { throw Failure(description: "the watch failed: \(error)") }
        let result = object(outer["result"])
        let revision = int64(object(result["header"])["revision"])
        let compacted = int64(result["compact_revision"])
        if compacted != 0 { return .compacted(revision: compacted) }
        if result["canceled"] as? Bool == true {
            throw Failure(description: "etcd canceled the watch: \(result["cancel_reason"] ?? "no reason given")")
        }
        if result["created"] as? Bool == true { return .created(revision: revision) }
        let events: [MembershipView.Event] = (result["events"] as? [Any] ?? []).compactMap { any in
            let event = object(any)
            let kv = object(event["kv"])
            let key = String(decoding: bytes(kv["key"]), as: UTF8.self)
            let modRevision = int64(kv["mod_revision"])
            if event["type"] as? String == "DELETE" { return .delete(key: key, modRevision: modRevision) }
            guard let entry = keyValue(kv) else { return nil }
            return .put(entry)
        }
        return .events(events, revision: revision)
    }
}

/// Feeds one response's body to the stream the client reads: whole lines for a watch, chunks for
/// a unary call. A status other than 200 fails the stream with etcd's message.
private final class EtcdResponseReceiver: ChannelInboundHandler, @unchecked Sendable {
    // @unchecked: every property is touched only on the channel's event loop (the handler's
    // callbacks and `fail`, which the client schedules there); the continuation is Sendable.
    typealias InboundIn = HTTPClientResponsePart

    private let continuation: AsyncThrowingStream<[UInt8], any Error>.Continuation
    private let splitLines: Bool
    private let path: String
    private let endpoint: String
    private var status: HTTPResponseStatus = .ok
    private var pending: [UInt8] = []
    private var done = false

    init(continuation: AsyncThrowingStream<[UInt8], any Error>.Continuation, splitLines: Bool, path: String, endpoint: String) {
        self.continuation = continuation
        self.splitLines = splitLines
        self.path = path
        self.endpoint = endpoint
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = head.status
        case .body(let buffer):
            pending += buffer.readableBytesView
            guard status == .ok else { return }
            if splitLines {
                while let newline = pending.firstIndex(of: 0x0A) {
                    continuation.yield(Array(pending[..<newline]))
                    pending.removeSubrange(...newline)
                }
            } else {
                continuation.yield(pending)
                pending = []
            }
        case .end:
            if status != .ok {
                let message = String(decoding: pending.prefix(300), as: UTF8.self)
                finish(EtcdClient.Failure(description: "etcd at \(endpoint) answered \(path) with \(status.code): \(message)"))
            } else {
                if !pending.isEmpty { continuation.yield(pending) }
                finish(nil)
            }
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(EtcdClient.Failure(description: "etcd at \(endpoint) closed the connection during \(path)"))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        finish(error)
        context.close(promise: nil)
    }

    func fail(_ error: any Error, channel: any Channel) {
        finish(error)
        channel.close(promise: nil)
    }

    private func finish(_ error: (any Error)?) {
        guard !done else { return }
        done = true
        continuation.finish(throwing: error)
    }
}

import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A backend that records exactly the bytes that reached it, per connection, and parses them as
/// an HTTP/1.1 server would (NIO's decoder, the same llhttp that many servers use), so a test can
/// see both what the gateway sent and how a backend understands it.
///
/// Each request it parses is answered by `respond` (raw bytes, so a test can also send responses
/// that break framing); the default is a 200 whose body names the request.
final class RecordingBackend: Sendable {
    struct Request: Sendable, CustomStringConvertible {
        var connection: Int
        var method: String
        var uri: String
        var headers: [(String, String)]
        var body: [UInt8]

        func header(_ name: String) -> String? {
            headers.first { $0.0.lowercased() == name.lowercased() }?.1
        }

        func headers(_ name: String) -> [String] {
            headers.filter { $0.0.lowercased() == name.lowercased() }.map(\.1)
        }

        var description: String {
            "#\(connection) \(method) \(uri) \(headers) body=\(String(decoding: body, as: UTF8.self).debugDescription)"
        }
    }

    typealias Respond = @Sendable (Request) -> [UInt8]

    /// What a scripted backend does after a request: bytes now, maybe more bytes a little later
    /// (a response nobody asked for), maybe close.
    struct Reply: Sendable {
        var bytes: [UInt8]
        var later: (delay: Duration, bytes: [UInt8])? = nil
        var close = false
    }

    typealias Script = @Sendable (Request) -> Reply

    private struct State {
        var connections: [[UInt8]] = []
        var requests: [Request] = []
        var parseErrors: [String] = []
        var closed = 0
    }

    private final class Store: Sendable {
        let mutex = Mutex(State())
        func withLockedValue<R: Sendable>(_ body: (inout State) -> R) -> R { mutex.withLock { body(&$0) } }
    }

    let port: Int
    private let channel: Channel
    private let state = Store()

    static func ok(_ request: Request) -> [UInt8] {
        let body = "seen \(request.method) \(request.uri) body=\(request.body.count)\n"
        return Array("HTTP/1.1 200 OK\r\ncontent-length: \(body.utf8.count)\r\n\r\n\(body)".utf8)
    }

    convenience init(respond: @escaping Respond = RecordingBackend.ok) async throws {
        try await self.init(script: { Reply(bytes: respond($0)) })
    }

    /// - Parameter answerAtHead: run `script` as soon as a request head arrives (a server that
    ///   answers before reading the body), not at the request's end.
    init(answerAtHead: Bool = false, script: @escaping Script) async throws {
        let state = self.state
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let index = state.withLockedValue { state in
                        state.connections.append([])
                        return state.connections.count - 1
                    }
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(ByteRecorder(index: index, state: state))
                    try sync.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
                    try sync.addHandler(RequestResponder(index: index, state: state, answerAtHead: answerAtHead, script: script))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        port = channel.localAddress?.port ?? 0
    }

    deinit {
        channel.close(promise: nil)
    }

    /// Every byte received, per connection, in the order connections were accepted.
    var connections: [[UInt8]] { state.withLockedValue { $0.connections } }
    /// Every request parsed, in the order they were complete.
    var requests: [Request] { state.withLockedValue { $0.requests } }
    var parseErrors: [String] { state.withLockedValue { $0.parseErrors } }
    /// Connections that have closed (from either side).
    var closedConnections: Int { state.withLockedValue { $0.closed } }

    /// What connection `index` received, as text.
    func text(_ index: Int) -> String {
        String(decoding: connections[index], as: UTF8.self)
    }

    private final class ByteRecorder: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let index: Int
        let state: Store

        init(index: Int, state: Store) {
            self.index = index
            self.state = state
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let bytes = Array(unwrapInboundIn(data).readableBytesView)
            state.withLockedValue { $0.connections[index] += bytes }
            context.fireChannelRead(data)
        }

        func channelInactive(context: ChannelHandlerContext) {
            state.withLockedValue { $0.closed += 1 }
            context.fireChannelInactive()
        }
    }

    private final class RequestResponder: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        let index: Int
        let state: Store
        let script: RecordingBackend.Script
        let answerAtHead: Bool
        var current: Request?

        init(index: Int, state: Store, answerAtHead: Bool, script: @escaping RecordingBackend.Script) {
            self.index = index
            self.state = state
            self.answerAtHead = answerAtHead
            self.script = script
        }

        private func answer(_ request: Request, context: ChannelHandlerContext) {
            let reply = script(request)
            let channel = context.channel
            let written = channel.writeAndFlush(channel.allocator.buffer(bytes: reply.bytes))
            if let later = reply.later {
                channel.eventLoop.scheduleTask(in: TimeAmount(later.delay)) {
                    channel.writeAndFlush(channel.allocator.buffer(bytes: later.bytes), promise: nil)
                }
            }
            if reply.close {
                written.whenComplete { _ in channel.close(promise: nil) }
            }
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                current = Request(
                    connection: index, method: head.method.rawValue, uri: head.uri,
                    headers: head.headers.map { ($0.name, $0.value) }, body: [])
                if answerAtHead, let request = current { answer(request, context: context) }
            case .body(let buffer):
                current?.body += buffer.readableBytesView
            case .end:
                guard let request = current else { return }
                current = nil
                state.withLockedValue { $0.requests.append(request) }
                if !answerAtHead { answer(request, context: context) }
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) {
            state.withLockedValue { $0.parseErrors.append("\(error)") }
            context.close(promise: nil)
        }
    }
}

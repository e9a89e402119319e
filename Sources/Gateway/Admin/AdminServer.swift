import Keeper
import NIOCore
import NIOHTTP1
import NIOPosix

/// The admin listener: a small HTTP/1.1 server in front of `AdminAPI`.
///
/// It must never cost the proxy its descriptors: a connection over `admin.max_connections` is
/// closed as soon as it is accepted, one with nothing to do is closed after `idle_timeout`, and
/// a request that takes longer than `request_timeout` to arrive gets 408 and is closed. An
/// operation that takes long (a suspend waiting for a drain, a roll) is not cut: no timeout runs
/// while a request is being answered.
enum AdminServer {
    /// Why an admin connection was closed at accept; NIO's accept handler closes it on this.
    struct ConnectionRefused: Error {}

    static func bind(
        config: AdminConfig, api: AdminAPI, connections: AdminConnections, group: EventLoopGroup, socket: Int32? = nil, paused: Bool = false
    ) async throws -> Channel {
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.autoRead, value: !paused)
            .childChannelInitializer { channel in
                guard connections.admit() else {
                    return channel.eventLoop.makeFailedFuture(ConnectionRefused())
                }
                channel.closeFuture.whenComplete { _ in connections.release() }
                return channel.eventLoop.makeCompletedFuture {
                    try configure(channel, config: config, api: api, peer: nil)
                }
            }
        if let socket {
            let channel = try await bootstrap.withBoundSocket(socket).get()
            ListeningSocket.restoreBacklog(socket)
            return channel
        }
        return try await bootstrap.bind(host: config.listen.host, port: config.listen.port).get()
    }

    /// The Unix socket: the same server, except that each connection's peer credentials are
    /// read from the kernel (SO_PEERCRED) when it is accepted and stand for who it is.
    static func bindUnix(
        config: AdminConfig, api: AdminAPI, connections: AdminConnections, group: EventLoopGroup, socket: Int32, paused: Bool
    ) async throws -> Channel {
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.autoRead, value: !paused)
            .childChannelInitializer { channel in
                guard connections.admit() else {
                    return channel.eventLoop.makeFailedFuture(ConnectionRefused())
                }
                channel.closeFuture.whenComplete { _ in connections.release() }
                guard let provider = channel as? SocketOptionProvider else {
                    return channel.eventLoop.makeFailedFuture(ConnectionRefused())
                }
                let credentials: EventLoopFuture<RawPeerCredentials> = provider.unsafeGetSocketOption(
                    level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
                return credentials.flatMapThrowing { raw in
                    try configure(channel, config: config, api: api, peer: .unix(PeerCredentials(pid: raw.pid, uid: raw.uid, gid: raw.gid)))
                }
            }
        let channel = try await bootstrap.withBoundSocket(socket).get()
        ListeningSocket.restoreBacklog(socket)
        return channel
    }

    /// The pipeline of one admin connection: timeouts, HTTP/1.1, the whole request, the API.
    private static func configure(_ channel: Channel, config: AdminConfig, api: AdminAPI, peer: AdminPeer?) throws {
        let idleTimeout = TimeAmount(config.idleTimeout)
        let requestTimeout = TimeAmount(config.requestTimeout)
        // The admin handler says "head received" once the whole request is in, and nothing
        // here is timed as a body or a tunnel.
        let timeouts = ConnectionTimeoutHandler(
            limits: .init(idle: idleTimeout, requestHeader: requestTimeout, requestBody: requestTimeout, tunnelIdle: idleTimeout))
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(timeouts)
        try sync.configureHTTPServerPipeline(withErrorHandling: true)
        try sync.addHandlers([
            NIOHTTPServerRequestAggregator(maxContentLength: 1 << 20),
            AdminHTTPHandler(api: api, timeouts: timeouts, peer: peer),
        ])
    }
}

/// `struct ucred` as SO_PEERCRED fills it (Glibc does not export it without _GNU_SOURCE): three
/// 32-bit fields in this order.
struct RawPeerCredentials: Sendable {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
}

/// Hands each whole admin request to the API on a task and writes the answer back on the loop.
final class AdminHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = NIOHTTPServerRequestFull
    typealias OutboundOut = HTTPServerResponsePart

    private let api: AdminAPI
    /// Told when a whole request has arrived (no limit while it is answered) and when its
    /// answer is out (the idle timeout starts).
    private let timeouts: ConnectionTimeoutHandler?
    /// Who is on the other end: the TCP client's address, or the socket peer's credentials
    /// (learnt once, when the connection was accepted).
    private let peer: AdminPeer?
    /// The event stream being written, ended when the connection closes.
    private var streaming: Task<Void, Never>?

    init(api: AdminAPI, timeouts: ConnectionTimeoutHandler? = nil, peer: AdminPeer? = nil) {
        self.api = api
        self.timeouts = timeouts
        self.peer = peer
    }

    func channelInactive(context: ChannelHandlerContext) {
        streaming?.cancel()
        streaming = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let full = unwrapInboundIn(data)
        timeouts?.requestHeadReceived(bodyExpected: false)
        let peer: AdminPeer
        if let known = self.peer {
            peer = known
        } else if let address = context.channel.remoteAddress {
            peer = .tcp(host: address.ipAddress ?? "?", port: address.port ?? 0)
        } else {
            peer = .tcp(host: "?", port: 0)
        }
        let request = AdminRequest(
            method: full.head.method.rawValue,
            uri: full.head.uri,
            body: full.body.map { Array($0.readableBytesView) } ?? [],
            headers: full.head.headers.map { (name: $0.name, value: $0.value) },
            peer: peer
        )
        let keepAlive = full.head.isKeepAlive
        let isHead = full.head.method == .HEAD
        let promise = context.eventLoop.makePromise(of: AdminResponse.self)
        let api = self.api
        promise.completeWithTask { await api.handle(request) }
        promise.futureResult.assumeIsolated().whenSuccess { response in
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: response.contentType)
            for (name, value) in response.headers { headers.add(name: name, value: value) }
            if let stream = response.stream, !isHead {
                // Chunked, until the stream ends; then the connection closes, so an event
                // stream never holds a keep-alive connection in an unknown state.
                headers.add(name: "connection", value: "close")
                let head = HTTPResponseHead(version: .http1_1, status: .init(statusCode: response.status), headers: headers)
                context.writeAndFlush(self.wrapOutboundOut(.head(head)), promise: nil)
                self.stream(stream, context: context)
                return
            }
            headers.add(name: "content-length", value: String(response.body.count))
            if !keepAlive { headers.add(name: "connection", value: "close") }
            let head = HTTPResponseHead(version: .http1_1, status: .init(statusCode: response.status), headers: headers)
            context.write(self.wrapOutboundOut(.head(head)), promise: nil)
            if !isHead {
                context.write(self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: response.body)))), promise: nil)
            }
            context.writeAndFlush(self.wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                response.afterWrite?()
                if keepAlive {
                    self.timeouts?.responseCompleted()
                } else {
                    context.close(promise: nil)
                }
            }
        }
    }

    /// Writes each piece of `stream` as it comes (on the event loop), then ends the answer and
    /// closes. A client that does not read fills its socket buffer and NIO's; the stream's own
    /// bounded buffer then drops the oldest pieces instead of growing.
    private func stream(_ stream: AsyncStream<[UInt8]>, context: ChannelHandlerContext) {
        let channel = context.channel
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        streaming = Task {
            for await piece in stream {
                if Task.isCancelled { break }
                channel.eventLoop.execute {
                    let (handler, context) = loopBound.value
                    guard channel.isActive else { return }
                    // A client that stopped reading would have every later piece queued here
                    // for as long as it stays connected; it is closed instead (an EventSource
                    // reconnects and resumes after its Last-Event-ID).
                    guard channel.isWritable else {
                        context.close(promise: nil)
                        return
                    }
                    context.writeAndFlush(handler.wrapOutboundOut(.body(.byteBuffer(channel.allocator.buffer(bytes: piece)))), promise: nil)
                }
            }
            channel.eventLoop.execute {
                let (handler, context) = loopBound.value
                guard channel.isActive else { return }
                context.writeAndFlush(handler.wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            }
        }
    }
}

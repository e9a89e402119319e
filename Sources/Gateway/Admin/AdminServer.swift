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
        let idleTimeout = TimeAmount(config.idleTimeout)
        let requestTimeout = TimeAmount(config.requestTimeout)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.autoRead, value: !paused)
            .childChannelInitializer { channel in
                guard connections.admit() else {
                    return channel.eventLoop.makeFailedFuture(ConnectionRefused())
                }
                channel.closeFuture.whenComplete { _ in connections.release() }
                return channel.eventLoop.makeCompletedFuture {
                    // The admin handler says "head received" once the whole request is in, and
                    // nothing here is timed as a body or a tunnel.
                    let timeouts = ConnectionTimeoutHandler(
                        limits: .init(idle: idleTimeout, requestHeader: requestTimeout, requestBody: requestTimeout, tunnelIdle: idleTimeout))
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(timeouts)
                    try sync.configureHTTPServerPipeline(withErrorHandling: true)
                    try sync.addHandlers([
                        NIOHTTPServerRequestAggregator(maxContentLength: 1 << 20),
                        AdminHTTPHandler(api: api, timeouts: timeouts),
                    ])
                }
            }
        if let socket {
            let channel = try await bootstrap.withBoundSocket(socket).get()
            ListeningSocket.restoreBacklog(socket)
            return channel
        }
        return try await bootstrap.bind(host: config.listen.host, port: config.listen.port).get()
    }
}

/// Hands each whole admin request to the API on a task and writes the answer back on the loop.
final class AdminHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = NIOHTTPServerRequestFull
    typealias OutboundOut = HTTPServerResponsePart

    private let api: AdminAPI
    /// Told when a whole request has arrived (no limit while it is answered) and when its
    /// answer is out (the idle timeout starts).
    private let timeouts: ConnectionTimeoutHandler?

    init(api: AdminAPI, timeouts: ConnectionTimeoutHandler? = nil) {
        self.api = api
        self.timeouts = timeouts
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let full = unwrapInboundIn(data)
        timeouts?.requestHeadReceived(bodyExpected: false)
        let request = AdminRequest(
            method: full.head.method.rawValue,
            uri: full.head.uri,
            body: full.body.map { Array($0.readableBytesView) } ?? []
        )
        let keepAlive = full.head.isKeepAlive
        let isHead = full.head.method == .HEAD
        let promise = context.eventLoop.makePromise(of: AdminResponse.self)
        let api = self.api
        promise.completeWithTask { await api.handle(request) }
        promise.futureResult.assumeIsolated().whenSuccess { response in
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: response.contentType)
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
}

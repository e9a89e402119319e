import NIOCore
import NIOHTTP1
import NIOPosix

/// The admin listener: a small HTTP/1.1 server in front of `AdminAPI`.
enum AdminServer {
    static func bind(host: String, port: Int, api: AdminAPI, group: EventLoopGroup) async throws -> Channel {
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandlers([
                        NIOHTTPServerRequestAggregator(maxContentLength: 1 << 20),
                        AdminHTTPHandler(api: api),
                    ])
                }
            }
        return try await bootstrap.bind(host: host, port: port).get()
    }
}

/// Hands each whole admin request to the API on a task and writes the answer back on the loop.
final class AdminHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = NIOHTTPServerRequestFull
    typealias OutboundOut = HTTPServerResponsePart

    private let api: AdminAPI

    init(api: AdminAPI) {
        self.api = api
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let full = unwrapInboundIn(data)
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
                if !keepAlive { context.close(promise: nil) }
            }
        }
    }
}

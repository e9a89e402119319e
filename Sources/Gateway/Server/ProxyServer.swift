import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// The client-facing HTTP/1.1 listener and the per-loop state its connections use.
final class ProxyServer: Sendable {
    let group: MultiThreadedEventLoopGroup
    /// One `LoopContext` per event loop, keyed by the loop's identity; immutable after start.
    private let contexts: [ObjectIdentifier: NIOLoopBound<LoopContext>]
    private let config: GatewayConfig
    private let logger: Logger

    init(group: MultiThreadedEventLoopGroup, config: GatewayConfig, router: Router, logger: Logger) throws {
        self.group = group
        self.config = config
        self.logger = logger
        var contexts: [ObjectIdentifier: NIOLoopBound<LoopContext>] = [:]
        for loop in group.makeIterator() {
            let bound = try loop.submit {
                NIOLoopBound(
                    LoopContext(eventLoop: loop, router: router, timeouts: config.timeouts, limits: config.limits, logger: logger),
                    eventLoop: loop
                )
            }.wait()
            contexts[ObjectIdentifier(loop)] = bound
        }
        self.contexts = contexts
    }

    /// Binds the listener; the returned channel is closed to stop accepting.
    func bind() async throws -> Channel {
        let contexts = self.contexts
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let loop = contexts[ObjectIdentifier(channel.eventLoop)]!.value
                    // Read per connection: a reload changes them for the connections after it.
                    let timeouts = loop.timeouts
                    let limits = loop.limits
                    let timeoutHandler = ConnectionTimeoutHandler(
                        idleTimeout: TimeAmount(timeouts.idle),
                        headerTimeout: TimeAmount(timeouts.requestHeader)
                    )
                    var decoderLimits = NIOHTTPDecoderLimitConfiguration()
                    decoderLimits.maxHeaderListSize = limits.maxHeaderBytes
                    decoderLimits.maxHeaderFieldSize = limits.maxHeaderBytes
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(timeoutHandler)
                    try sync.configureHTTPServerPipeline(
                        withPipeliningAssistance: false,
                        withErrorHandling: false,
                        // Response heads are the backend's, already parsed by NIO's decoder (no
                        // CR/LF can survive it), or the gateway's own: a validator pass per
                        // response would check what cannot be wrong.
                        withOutboundHeaderValidation: false,
                        withEncoderConfiguration: .init(),
                        withDecoderLimitConfiguration: decoderLimits
                    )
                    try sync.addHandler(ProxyHandler(loop: loop, timeouts: timeoutHandler))
                }
            }
        return try await bootstrap.bind(host: config.listen.host, port: config.listen.port).get()
    }

    /// Runs `body` on every loop's context and waits for all of them.
    func forEachLoop(_ body: @escaping @Sendable (LoopContext) -> Void) async {
        await withTaskGroup(of: Void.self) { group in
            for bound in contexts.values {
                group.addTask {
                    try? await bound.eventLoop.submit { body(bound.value) }.get()
                }
            }
        }
    }
}

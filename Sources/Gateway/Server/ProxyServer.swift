import Keeper
import Logging
import NIOCore
import Synchronization
import NIOHTTP1
import NIOPosix

/// The client-facing listeners and the per-loop state their connections use.
final class ProxyServer: Sendable {
    let group: MultiThreadedEventLoopGroup
    let traffic: TrafficCounters
    /// One `LoopContext` per event loop, keyed by the loop's identity; immutable after start.
    private let contexts: [ObjectIdentifier: NIOLoopBound<LoopContext>]
    private let config: GatewayConfig
    private let logger: Logger
    /// Client connections accepted and not yet closed, counted at the accept itself (on the
    /// listener's loop), before the connection reaches its own loop: a drain that waits for this
    /// to reach zero cannot miss a connection still on its way.
    let openConnections = Atomic<Int>(0)
    /// Idle cleartext HTTP/1.1 connections outside their channels (`timeouts.park_idle`); nil
    /// when the kernel refused its descriptors (nothing is parked then).
    private let parking: IdleParking?
    /// The loops in the order `ParkedConnection.loop` counts them.
    private let loops: [EventLoop]

    init(
        group: MultiThreadedEventLoopGroup, config: GatewayConfig, router: Router, traffic: TrafficCounters,
        accessLog: AccessLogWriter? = nil, logger: Logger
    ) throws {
        self.group = group
        self.config = config
        self.logger = logger
        self.traffic = traffic
        var contexts: [ObjectIdentifier: NIOLoopBound<LoopContext>] = [:]
        let loops = Array(group.makeIterator())
        self.loops = loops
        // The parking thread hands a socket back through `resume`, which needs the contexts
        // made below: it finds them through this box, filled before anything can be parked.
        let resumer = Resumer()
        do {
            parking = try IdleParking(
                traffic: traffic,
                resume: { descriptor, connection in resumer.resume(descriptor, connection) },
                counted: { change in resumer.counted(change) })
        } catch {
            logger.warning("idle connections will not be parked", metadata: ["error": "\(error)"])
            parking = nil
        }
        let ejection = PassiveEjection(group: group, probeTimeout: TimeAmount(config.timeouts.connect), logger: logger)
        for (index, loop) in loops.enumerated() {
            let shard = traffic.shards[index % traffic.shards.count]
            let parking = self.parking
            let bound = try loop.submit {
                let context = LoopContext(
                    eventLoop: loop, router: router.replicatedForLoop(), timeouts: config.timeouts, limits: config.limits,
                    http2: config.http2, traffic: shard, ejection: ejection, accessLog: accessLog, logger: logger)
                context.upgradeProtocols = config.upgradeProtocols
                context.parking = parking
                context.parkingIndex = index
                return NIOLoopBound(context, eventLoop: loop)
            }.wait()
            contexts[ObjectIdentifier(loop)] = bound
        }
        self.contexts = contexts
        resumer.server = self
    }

    /// Stops parking: what is parked closes (after `closeAllConnections`, nothing should be).
    func stopParking() {
        parking?.stop()
    }

    /// A parked connection spoke: it goes back to its loop in a new channel, with a proxy handler
    /// that goes on from what it kept, counted open until that channel closes.
    fileprivate func resume(_ descriptor: CInt, _ connection: ParkedConnection) {
        let loop = loops[connection.loop]
        let contexts = self.contexts
        ClientBootstrap(group: loop)
            .channelOption(.maxMessagesPerRead, value: 16)
            .channelOption(.recvAllocator, value: Self.receiveBuffers)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let context = contexts[ObjectIdentifier(channel.eventLoop)]!.value
                    try channel.pipeline.syncOperations.addHandler(ProxyHandler(loop: context, scheme: "http", resumed: connection))
                }
            }
            .withConnectedSocket(descriptor)
            .whenComplete { [self] result in
                switch result {
                case .success(let channel):
                    channel.closeFuture.whenComplete { _ in self.openConnections.subtract(1, ordering: .relaxed) }
                case .failure(let error):
                    // NIO closes the channel it could not set up, and the descriptor with it. (A
                    // descriptor it could not even wrap, which takes a failing fcntl, is not
                    // closed here either: whether NIO closed it cannot be told, and a second
                    // close would hit whatever took the number meanwhile.)
                    openConnections.subtract(1, ordering: .relaxed)
                    logger.debug("a parked connection could not resume", metadata: ["error": "\(error)"])
                }
            }
    }

    /// NIO keeps a channel's last receive buffer for its next read, so an idle keep-alive
    /// connection holds one: start it at 512 bytes (a request head of a few hundred bytes fits;
    /// it grows for bodies and shrinks back) instead of NIO's 2,048.
    private static let receiveBuffers = AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 512, maximum: 65536)

    /// Binds listener number `index`; the returned channel is closed to stop accepting.
    /// Listens for `listener`: on `socket` when one is given (a worker on the keeper's
    /// descriptor, which NIO then owns), else on a socket of its own.
    /// `paused`: accept nothing until `autoRead` is set (a worker waits for its turn).
    func bind(
        _ listener: ListenerConfig, index: Int, tls: TLSListenerContexts, socket: Int32? = nil, paused: Bool = false
    ) async throws -> Channel {
        let contexts = self.contexts
        let protocols = listener.protocols
        let terminatesTLS = listener.tls != nil
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: ListeningSocket.backlog)
            .serverChannelOption(.autoRead, value: !paused)
            .serverChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(AcceptCounter(server: self))
                }
            }
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelOption(.recvAllocator, value: Self.receiveBuffers)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let loop = contexts[ObjectIdentifier(channel.eventLoop)]!.value
                    if terminatesTLS {
                        guard let context = tls.current(index) else { throw ChannelError.inappropriateOperationForState }
                        try channel.pipeline.syncOperations.addHandler(context.makeHandler(counters: tls.counters))
                        try channel.pipeline.syncOperations.addHandler(TLSProtocolSelector(loop: loop, protocols: protocols))
                        return
                    }
                    switch (protocols.contains(.http1), protocols.contains(.h2c)) {
                    case (true, true):
                        try channel.pipeline.syncOperations.addHandler(PrefaceDetector(loop: loop, scheme: "http"))
                    case (false, true):
                        try ClientPipeline.addHTTP2(to: channel, loop: loop, scheme: "http")
                    default:
                        try ClientPipeline.addHTTP1(to: channel, loop: loop, scheme: "http")
                    }
                }
            }
        if let socket {
            let channel = try await bootstrap.withBoundSocket(socket).get()
            ListeningSocket.restoreBacklog(socket)
            return channel
        }
        return try await bootstrap.bind(host: listener.listen.host, port: listener.listen.port).get()
    }

    /// Runs `body` on every loop's context and waits for all of them.
    func forEachLoop(_ body: @escaping @Sendable (LoopContext) -> Void) async {
        _ = await mapLoops(body)
    }

    /// Runs `body` on every loop's context and returns what each gave.
    func mapLoops<Value: Sendable>(_ body: @escaping @Sendable (LoopContext) -> Value) async -> [Value] {
        await withTaskGroup(of: Value?.self) { group in
            for bound in contexts.values {
                group.addTask {
                    try? await bound.eventLoop.submit { body(bound.value) }.get()
                }
            }
            var values: [Value] = []
            for await value in group {
                if let value { values.append(value) }
            }
            return values
        }
    }
}

/// Counts each accepted connection before the bootstrap hands it to its event loop, and counts
/// it out when it closes.
private final class AcceptCounter: ChannelInboundHandler, Sendable {
    typealias InboundIn = Channel

    private let server: ProxyServer

    init(server: ProxyServer) {
        self.server = server
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let accepted = unwrapInboundIn(data)
        let server = self.server
        server.openConnections.add(1, ordering: .relaxed)
        accepted.closeFuture.whenComplete { _ in server.openConnections.subtract(1, ordering: .relaxed) }
        context.fireChannelRead(data)
    }
}

/// Lets the parking thread reach the server, which is made after the parking it owns.
private final class Resumer: @unchecked Sendable {
    /// Set once, at the end of `ProxyServer.init`, before any connection exists (so before
    /// anything can be parked or resumed); read-only from then on.
    unowned(unsafe) var server: ProxyServer?

    func resume(_ descriptor: CInt, _ connection: ParkedConnection) {
        server!.resume(descriptor, connection)
    }

    func counted(_ change: Int) {
        server!.openConnections.add(change, ordering: .relaxed)
    }
}

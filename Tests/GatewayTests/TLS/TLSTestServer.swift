import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

@testable import Gateway

/// A TLS-terminating HTTP/1.1 server on 127.0.0.1, for tests with real clients (`openssl
/// s_client`, `curl`).
///
/// Each connection gets a `TLSServerHandler`, then `TLSTestApplication`, which installs the HTTP/1.1
/// handlers when the handshake completes, the way the gateway will choose its protocol by ALPN.
/// Every request is answered with the request body echoed and the TLS parameters in headers.
final class TLSTestServer: Sendable {
    let port: Int
    let counters: TLSCounters
    let log: TLSTestLog
    private let channel: any Channel

    private init(port: Int, counters: TLSCounters, log: TLSTestLog, channel: any Channel) {
        self.port = port
        self.counters = counters
        self.log = log
        self.channel = channel
    }

    static func start(context: TLSServerContext) async throws -> TLSTestServer {
        let counters = TLSCounters()
        let log = TLSTestLog()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    try pipeline.addHandler(context.makeHandler(counters: counters))
                    try pipeline.addHandler(TLSTestApplication(log: log))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        guard let port = channel.localAddress?.port else {
            try? await channel.close()
            throw TestSupportError("the test server has no port")
        }
        return TLSTestServer(port: port, counters: counters, log: log, channel: channel)
    }

    /// Stops listening; connections still open end with their clients.
    deinit {
        self.channel.close(promise: nil)
    }

    /// Waits until `condition` holds for the counters, failing after `timeout` with what they were.
    func waitForCounters(
        _ what: String,
        timeout: Duration = .seconds(10),
        _ condition: (TLSCounters.Snapshot) -> Bool
    ) async throws {
        let deadline = ContinuousClock.now + timeout
        while !condition(self.counters.snapshot()) {
            if ContinuousClock.now >= deadline {
                throw TestSupportError(
                    "TLS counters: \(what) not reached within \(timeout): \(self.counters.snapshot()); "
                        + "errors: \(self.log.errors)"
                )
            }
            try await Task.sleep(for: .milliseconds(5))
        }
    }
}

/// What the test server's connections saw, across event loops.
final class TLSTestLog: Sendable {
    private struct State {
        var handshakes: [TLSHandshakeCompleted] = []
        var errors: [String] = []
    }

    private let state = Mutex(State())

    var handshakes: [TLSHandshakeCompleted] { self.state.withLock { $0.handshakes } }
    var errors: [String] { self.state.withLock { $0.errors } }

    func record(_ handshake: TLSHandshakeCompleted) {
        self.state.withLock { $0.handshakes.append(handshake) }
    }

    func record(_ error: any Error) {
        self.state.withLock { $0.errors.append("\(error)") }
    }
}

/// Sits above the TLS handler; on `TLSHandshakeCompleted` adds the HTTP/1.1 handlers after
/// itself, then passes plaintext on to them.
final class TLSTestApplication: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let log: TLSTestLog

    init(log: TLSTestLog) {
        self.log = log
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let handshake = event as? TLSHandshakeCompleted else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        self.log.record(handshake)
        do {
            let pipeline = context.pipeline.syncOperations
            try pipeline.configureHTTPServerPipeline(position: .after(self), withErrorHandling: true)
            try pipeline.addHandler(TLSTestResponder(handshake: handshake), position: .last)
        } catch {
            context.fireErrorCaught(error)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.log.record(error)
        context.fireErrorCaught(error)
    }
}

/// Answers each request with its body, and the TLS parameters in `x-tls-*` headers.
final class TLSTestResponder: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let handshake: TLSHandshakeCompleted
    private var body = ByteBuffer()

    init(handshake: TLSHandshakeCompleted) {
        self.handshake = handshake
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head:
            self.body.clear()
        case .body(var chunk):
            self.body.writeBuffer(&chunk)
        case .end:
            var head = HTTPResponseHead(version: .http1_1, status: .ok)
            head.headers.add(name: "x-tls-alpn", value: self.handshake.alpn ?? "none")
            head.headers.add(name: "x-tls-sni", value: self.handshake.serverName ?? "none")
            head.headers.add(name: "x-tls-version", value: self.handshake.version)
            head.headers.add(name: "content-length", value: "\(self.body.readableBytes)")
            context.write(self.wrapOutboundOut(.head(head)), promise: nil)
            context.write(self.wrapOutboundOut(.body(.byteBuffer(self.body))), promise: nil)
            context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
            self.body = ByteBuffer()
        }
    }
}

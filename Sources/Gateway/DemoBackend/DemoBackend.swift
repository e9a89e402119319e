import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A small HTTP/1.1 origin server for demos and tests: the backend the gateway proxies to and
/// supervises when there is no real application at hand.
///
/// It behaves the way the gateway needs a well-behaved backend to behave: keep-alive, streamed
/// bodies with backpressure, WebSocket upgrades, and a graceful shutdown (stop accepting, let
/// requests in flight finish, close idle connections, exit 0) when the service group is asked to
/// shut down, which is what SIGTERM from the supervisor does.
struct DemoBackend: Service {
    var host: String
    var port: Int
    var name: String
    /// How long a graceful shutdown waits for requests in flight before closing their connections.
    var drainTimeout: Duration
    /// Print a line per request head (and WebSocket upgrade) as it arrives.
    var logRequests = false
    var group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton

    func run() async throws {
        let tracker = DemoConnectionTracker()
        let name = self.name
        let logRequests = self.logRequests
        let pid = getpid()
        let server = try await ServerBootstrap(group: self.group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                guard tracker.register(channel) else {
                    return channel.close()
                }
                return channel.eventLoop.makeCompletedFuture {
                    try Self.configure(channel, name: name, pid: pid, logRequests: logRequests)
                }
            }
            .bind(host: self.host, port: self.port)
            .get()
        let address = server.localAddress.map { "\($0.ipAddress ?? self.host):\($0.port ?? self.port)" }
        Self.say("demo-backend \(name) listening on \(address ?? "\(self.host):\(self.port)") pid \(pid)")

        // Cancellation (rather than a graceful shutdown) ends the wait too; shut down the same way.
        try? await gracefulShutdown()

        try? await server.close()
        let inFlight = DemoRequestHandler.inFlight.load(ordering: .relaxed)
        let open = tracker.quiesceAll()
        Self.say("demo-backend \(name) shutting down: stopped accepting, \(open) connections open, \(inFlight) requests in flight")
        let left = await tracker.waitUntilDrained(timeout: self.drainTimeout, on: server.eventLoop)
        if left > 0 {
            Self.say("demo-backend \(name) drain timed out after \(self.drainTimeout): closing \(left) connections")
            await tracker.closeAll()
        }
        Self.say("demo-backend \(name) stopped")
    }

    private static func configure(_ channel: any Channel, name: String, pid: Int32, logRequests: Bool) throws {
        let handlerName = "demo-request-handler"
        let upgrader = NIOWebSocketServerUpgrader(
            shouldUpgrade: { channel, head in
                let path = head.uri.split(separator: "?", maxSplits: 1).first ?? ""
                if logRequests && path == "/ws" {
                    Self.say("demo-backend \(name) upgrade \(head.uri)")
                }
                return channel.eventLoop.makeSucceededFuture(path == "/ws" ? HTTPHeaders() : nil)
            },
            upgradePipelineHandler: { channel, _ in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    let requestHandler = try pipeline.handler(type: DemoRequestHandler.self)
                    let quiesce = requestHandler.quiesceRequested
                    pipeline.removeHandler(requestHandler, promise: nil)
                    try pipeline.addHandler(DemoWebSocketEchoHandler())
                    if quiesce {
                        // A drain began during the upgrade: pass it on to the WebSocket handler.
                        pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
                    }
                }
            }
        )
        let pipeline = channel.pipeline.syncOperations
        try pipeline.configureHTTPServerPipeline(
            withPipeliningAssistance: true,
            withServerUpgrade: (upgraders: [upgrader], completionHandler: { _ in }),
            withErrorHandling: true
        )
        try pipeline.addHandler(DemoRequestHandler(name: name, pid: pid, logRequests: logRequests), name: handlerName)
    }

    /// One whole line on stdout, written at once: test harnesses and the supervisor read these
    /// lines from a pipe, where `print` alone would sit in a buffer.
    static func say(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(STDOUT_FILENO, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return }
            offset += written
        }
    }
}

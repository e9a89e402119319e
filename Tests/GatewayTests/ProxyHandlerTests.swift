import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import RequestControl
import Testing

@testable import Gateway

/// The proxy handler on an `EmbeddedChannel`: the answers the gateway gives by itself, without a
/// backend (routing misses, limits, drains), checked part by part.
@Suite struct ProxyHandlerTests {
    struct Fixture {
        let channel: EmbeddedChannel
        let controller: RequestController
    }

    /// One deployment `shop` with an entry point limited to one request in flight, and a backend
    /// nothing listens on (these tests never reach it).
    static func makeFixture() throws -> Fixture {
        let config = try ConfigLoader.parse(
            yaml: """
                listen: 127.0.0.1:0
                deployments:
                  - name: shop
                    path_prefix: /shop/
                    entry_points:
                      - name: default
                        path_prefix: /
                        max_requests: 1
                    backends: [127.0.0.1:9]
                """,
            source: "test.yaml"
        )
        let controller = RequestController(configuration: BackendMembership.requestControlConfiguration(config))
        let channel = EmbeddedChannel()
        let loop = LoopContext(
            eventLoop: channel.eventLoop,
            router: Router(config: config, controller: controller),
            timeouts: config.timeouts,
            limits: config.limits,
            traffic: TrafficCounters.Shard(),
            logger: Logger(label: "test")
        )
        try channel.pipeline.syncOperations.addHandler(ProxyHandler(loop: loop, timeouts: nil))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 40000)).wait()
        return Fixture(channel: channel, controller: controller)
    }

    static func send(_ channel: EmbeddedChannel, _ uri: String) throws {
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: uri)
        head.headers.add(name: "host", value: "x")
        try channel.writeInbound(HTTPServerRequestPart.head(head))
        try channel.writeInbound(HTTPServerRequestPart.end(nil))
    }

    /// The response the handler wrote: head and body text.
    static func response(_ channel: EmbeddedChannel) throws -> (HTTPResponseHead, String) {
        guard case .head(let head) = try channel.readOutbound(as: HTTPServerResponsePart.self) else {
            throw TestSupportError("no response head")
        }
        var body = ""
        while let part = try channel.readOutbound(as: HTTPServerResponsePart.self) {
            switch part {
            case .body(.byteBuffer(let buffer)): body += String(buffer: buffer)
            case .body: break
            case .end: return (head, body)
            case .head: throw TestSupportError("second head")
            }
        }
        throw TestSupportError("no response end")
    }

    @Test func noRouteIs404AndKeepsTheConnection() throws {
        let f = try Self.makeFixture()
        try Self.send(f.channel, "/elsewhere")
        let (head, body) = try Self.response(f.channel)
        #expect(head.status == .notFound)
        #expect(body.contains("/elsewhere"))
        #expect(f.channel.isActive)
        #expect(f.controller.snapshot().total == 0)
    }

    @Test func limitRejectionIs503WithReasonAndRetryAfter() throws {
        let f = try Self.makeFixture()
        let point = try #require(f.controller.controlPoint(deployment: "shop", entryPoint: "default"))
        // Hold the only slot, as a request in flight would.
        guard case .run(let held) = point.beginRequest() else {
            Issue.record("first request not admitted")
            return
        }
        try Self.send(f.channel, "/shop/x")
        let (head, body) = try Self.response(f.channel)
        #expect(head.status == .serviceUnavailable)
        #expect(head.headers.first(name: "retry-after") == "1")
        #expect(head.headers.first(name: "x-gateway-reject") == "entry_point_limit")
        #expect(head.headers.first(name: "connection") == nil)
        #expect(body.contains("overloaded"))
        #expect(f.channel.isActive)
        held.complete(status: 200)
        let counts = f.controller.snapshot().deployments[0].entryPoints[0]
        #expect(counts.rejected[.entryPointLimit] == 1)
        #expect(counts.active == 0)
    }

    @Test func drainingRejectionClosesTheConnection() async throws {
        let f = try Self.makeFixture()
        let result = try await f.controller.suspend(.deployment("shop"), timeout: .noWait)
        #expect(result.drained)
        try Self.send(f.channel, "/shop/x")
        let (head, body) = try Self.response(f.channel)
        #expect(head.status == .serviceUnavailable)
        #expect(head.headers.first(name: "x-gateway-reject") == "suspended")
        #expect(head.headers.first(name: "connection") == "close")
        #expect(body.contains("draining"))
        f.channel.embeddedEventLoop.run()
        #expect(!f.channel.isActive)
    }

    @Test func parserErrorsAreAnswered400Or431() throws {
        for (error, status) in [(HTTPParserError.invalidHeaderToken, HTTPResponseStatus.badRequest), (.headerOverflow, .requestHeaderFieldsTooLarge)] {
            let f = try Self.makeFixture()
            f.channel.pipeline.fireErrorCaught(error)
            let (head, _) = try Self.response(f.channel)
            #expect(head.status == status)
            #expect(head.headers.first(name: "connection") == "close")
            f.channel.embeddedEventLoop.run()
            #expect(!f.channel.isActive)
        }
    }
}

import Foundation
import Logging
import NIOCore
import NIOEmbedded
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
            logger: Logger(label: "test"),
            timerClock: { [loop = channel.embeddedEventLoop] in loop.now }
        )
        try channel.pipeline.syncOperations.addHandler(ProxyHandler(loop: loop))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 40000)).wait()
        return Fixture(channel: channel, controller: controller)
    }

    static func send(_ channel: EmbeddedChannel, _ uri: String) throws {
        try channel.writeInbound(ByteBuffer(string: "GET \(uri) HTTP/1.1\r\nhost: x\r\n\r\n"))
    }

    /// A response as the handler wrote it (bytes): status, fields, body.
    struct Response {
        var status: Int
        var fields: [(String, String)]
        var body: String

        func first(_ name: String) -> String? {
            fields.first { $0.0.lowercased() == name }?.1
        }
    }

    /// The response the handler wrote: the bytes up to the end of the body its length gives.
    static func response(_ channel: EmbeddedChannel) throws -> Response {
        var bytes: [UInt8] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
            bytes += buffer.readableBytesView
        }
        let text = String(decoding: bytes, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { throw TestSupportError("no response head in \(text)") }
        let lines = text[..<split.lowerBound].components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { throw TestSupportError("bad status line \(lines[0])") }
        let fields = lines.dropFirst().map { line -> (String, String) in
            let colon = line.firstIndex(of: ":")!
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        let body = String(text[split.upperBound...])
        let response = Response(status: status, fields: fields, body: body)
        if let length = response.first("content-length").flatMap(Int.init), body.utf8.count != length {
            throw TestSupportError("body of \(body.utf8.count) bytes, content-length \(length)")
        }
        return response
    }

    @Test func noRouteIs404AndKeepsTheConnection() throws {
        let f = try Self.makeFixture()
        try Self.send(f.channel, "/elsewhere")
        let response = try Self.response(f.channel)
        #expect(response.status == 404)
        #expect(response.body.contains("/elsewhere"))
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
        let response = try Self.response(f.channel)
        #expect(response.status == 503)
        #expect(response.first("retry-after") == "1")
        #expect(response.first("x-gateway-reject") == "entry_point_limit")
        #expect(response.first("connection") == nil)
        #expect(response.body.contains("overloaded"))
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
        let response = try Self.response(f.channel)
        #expect(response.status == 503)
        #expect(response.first("x-gateway-reject") == "suspended")
        #expect(response.first("connection") == "close")
        #expect(response.body.contains("draining"))
        f.channel.embeddedEventLoop.run()
        #expect(!f.channel.isActive)
    }

    /// A method llhttp does not know is never forwarded (a backend parsing it differently is how
    /// requests get smuggled): 501, and the connection goes on when no body follows.
    @Test func anUnknownMethodGets501() throws {
        let f = try Self.makeFixture()
        try f.channel.writeInbound(ByteBuffer(string: "BREW /shop/pot HTTP/1.1\r\nhost: x\r\n\r\n"))
        let response = try Self.response(f.channel)
        #expect(response.status == 501)
        #expect(response.body.contains("BREW"))
        #expect(f.channel.isActive)
        #expect(f.controller.snapshot().total == 0)
    }

    /// A closed connection leaves nothing behind: the handler (and with it the pipeline and the
    /// last request) is freed. It used to keep its context, which keeps it: 2 KB per connection.
    @Test func aClosedConnectionFreesItsHandler() throws {
        weak var released: ProxyHandler?
        do {
            let f = try Self.makeFixture()
            released = try f.channel.pipeline.syncOperations.handler(type: ProxyHandler.self)
            try Self.send(f.channel, "/elsewhere")
            _ = try Self.response(f.channel)
            _ = try f.channel.finish()
        }
        #expect(released == nil)
    }

    /// The same for an HTTP/2 connection, whose session is much larger.
    @Test func aClosedHTTP2ConnectionFreesItsHandler() throws {
        weak var released: H2ConnectionHandler?
        do {
            let config = try ConfigLoader.parse(
                yaml: "listen: 127.0.0.1:0\ndeployments:\n  - name: shop\n    backends: [127.0.0.1:9]\n", source: "test.yaml")
            let channel = EmbeddedChannel()
            let loop = LoopContext(
                eventLoop: channel.eventLoop, router: Router(deployments: []), timeouts: config.timeouts, limits: config.limits,
                traffic: TrafficCounters.Shard(), logger: Logger(label: "test"),
                timerClock: { [loop = channel.embeddedEventLoop] in loop.now })
            let handler = H2ConnectionHandler(loop: loop, scheme: "http", options: .init())
            released = handler
            try channel.pipeline.syncOperations.addHandler(handler)
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 40000)).wait()
            _ = try channel.finish()
        }
        #expect(released == nil)
    }

    /// A head sent a byte at a time is scanned once it is whole, not once per byte (which made a
    /// slow client's head cost work quadratic in its size).
    @Test func aHeadSentByteByByteIsScannedOnce() throws {
        let f = try Self.makeFixture()
        let handler = try f.channel.pipeline.syncOperations.handler(type: ProxyHandler.self)
        let head = "GET /elsewhere HTTP/1.1\r\nhost: x\r\n" + String(repeating: "x-pad: 0123456789\r\n", count: 200) + "\r\n"
        for byte in head.utf8 {
            try f.channel.writeInbound(ByteBuffer(bytes: [byte]))
        }
        #expect(try Self.response(f.channel).status == 404)
        #expect(handler.headScans == 1)
    }

    @Test func unparsableHeadsAreAnswered400Or431AndClose() throws {
        let oversized = "GET / HTTP/1.1\r\nhost: x\r\nx-big: " + String(repeating: "a", count: 70_000) + "\r\n\r\n"
        for (request, status) in [("GET / HTTP/1.1\r\nbad header\r\n\r\n", 400), (oversized, 431)] {
            let f = try Self.makeFixture()
            try f.channel.writeInbound(ByteBuffer(string: request))
            let response = try Self.response(f.channel)
            #expect(response.status == status)
            #expect(response.first("connection") == "close")
            f.channel.embeddedEventLoop.run()
            #expect(!f.channel.isActive)
        }
    }
}

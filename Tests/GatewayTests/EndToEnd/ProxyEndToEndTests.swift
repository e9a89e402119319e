import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing

/// The HTTP/1.1 proxy seen from a client: real gateway process, real demo backends, real sockets.
@Suite(.timeLimit(.minutes(2)))
struct ProxyEndToEndTests {
    @Test func getAndPostBodiesOfEverySize() async throws {
        let h = try await GatewayHarness(yaml: GatewayHarness.simpleConfig())

        let root = try await h.get("/")
        #expect(root.status == .ok)
        #expect(root.bodyString.hasPrefix("b0 pid "))

        try await TestHTTPClient.withConnection(port: h.port) { client in
            let empty = try await client.request(.POST, "/echo", body: [])
            #expect(empty.status == .ok)
            #expect(empty.body.isEmpty)

            let megabyte = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            let echoed = try await client.request(.POST, "/echo", headers: [("content-type", "application/octet-stream")], body: megabyte)
            #expect(echoed.status == .ok)
            #expect(echoed.body == megabyte)
            #expect(echoed.header("content-type") == "application/octet-stream")

            // Chunked upload streamed in pieces; the echo comes back whole and in order.
            let pieces = (0..<64).map { i in [UInt8](repeating: UInt8(i), count: 4096 + i) }
            let chunked = try await client.request(.POST, "/echo", chunks: AsyncStreamOf(pieces))
            #expect(chunked.status == .ok)
            #expect(chunked.body == pieces.flatMap { $0 })

            let bytes = try await client.request(.GET, "/bytes?n=3000000")
            #expect(bytes.body.count == 3_000_000)
        }
    }

    /// A client far slower than the backend, through a small window: the body arrives whole, the
    /// request stays in flight while the gateway still holds part of it, and once it is written
    /// the connection carries the next request.
    @Test func aSlowReaderGetsItAllAndTheConnectionGoesOn() async throws {
        let h = try await GatewayHarness(yaml: GatewayHarness.simpleConfig())
        // More than the kernel buffers for a socket (4 MB at most here), a small receive buffer
        // (set before the connect, so the window is small from the start) and slow reads.
        let size = 16_000_000
        let connection = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.socketOption(.so_rcvbuf), value: 4096)
            .connect(host: "127.0.0.1", port: h.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        try await connection.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: "GET /bytes?n=\(size) HTTP/1.1\r\nHost: x\r\n\r\n"))
            var reader = ByteReader(inbound.makeAsyncIterator())
            let head = try await reader.readUntil("\r\n\r\n")
            #expect(head.hasPrefix("HTTP/1.1 200"))
            try await h.waitForActive(1)
            var received = 0
            while received < size {
                let piece = try await reader.read(count: min(65_536, size - received))
                received += piece.count
                try await Task.sleep(for: .milliseconds(5))
            }
            #expect(received == size)
            try await h.waitForActive(0)
            // The same connection carries the next request.
            try await outbound.write(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
            let next = try await reader.readUntil("\r\n\r\n")
            #expect(next.hasPrefix("HTTP/1.1 200"))
        }
    }

    @Test func keepAliveConnectionIsReused() async throws {
        let h = try await GatewayHarness(yaml: GatewayHarness.simpleConfig())
        try await TestHTTPClient.withConnection(port: h.port) { client in
            for _ in 0..<5 {
                let r = try await client.request(.GET, "/")
                #expect(r.status == .ok)
                #expect(r.header("connection") != "close")
            }
            #expect(client.isOpen)
        }
        let stats = try await h.stats()
        #expect(GatewayHarness.entryPoint(stats, "default")["total"] as? Int == 5)
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        let h = try await GatewayHarness(yaml: GatewayHarness.simpleConfig())
        // Three requests in one write; the first is slow, so the others wait behind it.
        let requests =
            "GET /sleep?ms=300 HTTP/1.1\r\nHost: x\r\n\r\n"
            + "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nsecond"
            + "GET /status/404 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        let answer = try await TestHTTPClient.raw(port: h.port, requests)
        let slept = try #require(answer.range(of: "slept 300 ms"))
        let second = try #require(answer.range(of: "\r\n\r\nsecond"))
        let third = try #require(answer.range(of: "HTTP/1.1 404"))
        #expect(slept.upperBound <= second.lowerBound)
        #expect(second.upperBound <= third.lowerBound)
        #expect(answer.components(separatedBy: "HTTP/1.1 ").count == 4)
    }

    @Test func forwardedHeadersAreSetAndHopByHopHeadersRemoved() async throws {
        let h = try await GatewayHarness(yaml: GatewayHarness.simpleConfig())
        let r = try await h.get(
            "/headers",
            headers: [
                ("host", "shop.example:8080"), ("x-forwarded-for", "10.1.2.3"), ("connection", "keep-alive, x-secret"),
                ("x-secret", "drop me"), ("keep-alive", "timeout=5"), ("x-custom", "kept"),
            ]
        )
        #expect(r.status == .ok)
        let seen = try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any] ?? [:]
        #expect(seen["x-forwarded-for"] as? [String] == ["10.1.2.3, 127.0.0.1"])
        #expect(seen["x-forwarded-proto"] as? [String] == ["http"])
        #expect(seen["x-forwarded-host"] as? [String] == ["shop.example:8080"])
        #expect(seen["host"] as? [String] == ["shop.example:8080"])
        #expect(seen["x-custom"] as? [String] == ["kept"])
        #expect(seen["x-secret"] == nil)
        #expect(seen["keep-alive"] == nil)
    }

    @Test func routingByHostAndLongestPrefixAnd404() async throws {
        let yaml = """
            listen: {listen}
            admin:
              listen: {admin}
            deployments:
              - name: shop
                hosts: [shop.local]
                path_prefix: /
                entry_points:
                  - name: api
                    path_prefix: /api/
                  - name: checkout
                    path_prefix: /checkout
                    methods: [POST]
                  - name: default
                    path_prefix: /
                backends: [{backend0}]
              - name: blog
                path_prefix: /blog/
                backends: [{backend1}]
            """
        let h = try await GatewayHarness(backends: 2, yaml: yaml)
        #expect(try await h.get("/", headers: [("host", "shop.local")]).bodyString.hasPrefix("b0 "))
        _ = try await h.get("/api/x", headers: [("host", "shop.local")])
        _ = try await h.get("/blog/x", headers: [("host", "other")])
        _ = try await h.get("/blog/y", headers: [("host", "SHOP.local:80")])  // longer prefix wins over host
        let missing = try await h.get("/nothing", headers: [("host", "other")])
        #expect(missing.status == .notFound)
        #expect(missing.bodyString.contains("no route"))
        try await TestHTTPClient.withConnection(port: h.port) { client in
            _ = try await client.request(.POST, "/checkout", headers: [("host", "shop.local")], body: [1, 2, 3])
            _ = try await client.request(.GET, "/checkout", headers: [("host", "shop.local")])
        }
        let stats = try await h.stats()
        #expect(GatewayHarness.entryPoint(stats, "api")["total"] as? Int == 1)
        #expect(GatewayHarness.entryPoint(stats, "checkout")["total"] as? Int == 1)
        #expect(GatewayHarness.entryPoint(stats, "default")["total"] as? Int == 2)
        #expect(GatewayHarness.entryPoint(stats, "default", deployment: "blog")["total"] as? Int == 2)
    }

    @Test func inFlightRequestsShowInStatsAndReturnToZero() async throws {
        let h = try await GatewayHarness(yaml: GatewayHarness.simpleConfig())
        try await withThrowingTaskGroup(of: TestHTTPResponse.self) { group in
            for _ in 0..<3 {
                group.addTask { try await h.get("/sleep?ms=2500") }
            }
            // One snapshot: the same moment for every count (a second /stats call could come
            // after the sleeps ended on a loaded machine).
            let stats = try await h.waitForActive(3)
            let ep = GatewayHarness.entryPoint(stats, "default")
            #expect(ep["active"] as? Int == 3)
            let deployment = (stats["deployments"] as? [[String: Any]])?.first
            let backend = (deployment?["backends"] as? [[String: Any]])?.first
            #expect(backend?["active"] as? Int == 3)
            for try await response in group { #expect(response.status == .ok) }
        }
        try await h.waitForActive(0)
        let ep = GatewayHarness.entryPoint(try await h.stats(), "default")
        #expect(ep["total"] as? Int == 3)
        #expect((ep["status"] as? [String: Any])?["2xx"] as? Int == 3)
        #expect(((ep["latency_ms"] as? [String: Any])?["max"] as? Double ?? 0) >= 700)
    }

    @Test(arguments: [LimitScope.global, .deployment, .entryPoint])
    func limitRejectsExactlyAtTheConfiguredNumber(scope: LimitScope) async throws {
        let limit = 3
        let yaml: String
        switch scope {
        case .global:
            yaml = GatewayHarness.simpleConfig(globalLimit: limit)
        case .deployment:
            yaml = GatewayHarness.simpleConfig(deploymentLimit: limit)
        case .entryPoint:
            yaml = """
                listen: {listen}
                admin:
                  listen: {admin}
                deployments:
                  - name: shop
                    entry_points:
                      - name: default
                        path_prefix: /
                        max_requests: \(limit)
                    backends: {backends}
                """
        }
        let h = try await GatewayHarness(yaml: yaml)
        try await withThrowingTaskGroup(of: TestHTTPResponse.self) { group in
            for _ in 0..<limit {
                group.addTask { try await h.get("/sleep?ms=1500") }
            }
            try await h.waitForActive(limit)
            let refused = try await h.get("/")
            #expect(refused.status == .serviceUnavailable)
            #expect(refused.header("retry-after") == "1")
            #expect(refused.header("x-gateway-reject") == scope.reason)
            #expect(refused.bodyString.contains("overloaded"))
            for try await response in group { #expect(response.status == .ok) }
        }
        try await h.waitForActive(0)
        #expect(try await h.get("/").status == .ok)
        let ep = GatewayHarness.entryPoint(try await h.stats(), "default")
        #expect((ep["rejected"] as? [String: Any])?[scope.reason] as? Int == 1)
    }

    enum LimitScope: CustomStringConvertible, Sendable {
        case global, deployment, entryPoint
        var reason: String {
            switch self {
            case .global: "global_limit"
            case .deployment: "deployment_limit"
            case .entryPoint: "entry_point_limit"
            }
        }
        var description: String { reason }
    }

    @Test func backendDownGives502AndTheGatewayKeepsServing() async throws {
        let yaml = """
            listen: {listen}
            admin:
              listen: {admin}
            deployments:
              - name: dead
                path_prefix: /dead/
                backends: [{backend1}]
              - name: shop
                path_prefix: /
                backends: [{backend0}]
            """
        let h = try await GatewayHarness(backends: 1, deadBackends: 1, yaml: yaml)
        let dead = try await h.get("/dead/x")
        #expect(dead.status == .badGateway)
        #expect(try await h.get("/").status == .ok)
        let stats = try await h.stats()
        let d = (stats["deployments"] as? [[String: Any]])?.first { $0["name"] as? String == "dead" }
        let backend = (d?["backends"] as? [[String: Any]])?.first
        #expect(backend?["failures"] as? Int == 1)
        #expect(GatewayHarness.entryPoint(stats, "default", deployment: "dead")["active"] as? Int == 0)
    }

    @Test func aDeadBackendIsSkippedWhenAnotherCanServe() async throws {
        let h = try await GatewayHarness(backends: 1, deadBackends: 1, yaml: GatewayHarness.simpleConfig())
        for _ in 0..<6 {
            #expect(try await h.get("/").status == .ok)
        }
    }

    @Test func malformedRequestsGet400And431() async throws {
        let h = try await GatewayHarness(yaml: GatewayHarness.simpleConfig(extra: "limits:\n  max_header_bytes: 4096\n"))
        let garbage = try await TestHTTPClient.raw(port: h.port, "GET / HTTP/1.1\r\nHost: x\r\nbad header line\r\n\r\n")
        #expect(garbage.hasPrefix("HTTP/1.1 400"))
        let huge = "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + String(repeating: "a", count: 8000) + "\r\n\r\n"
        let tooLarge = try await TestHTTPClient.raw(port: h.port, huge)
        #expect(tooLarge.hasPrefix("HTTP/1.1 431"))
        #expect(try await h.get("/").status == .ok)
    }

    @Test func http10ClientGetsAnUnchunkedResponseAndAClose() async throws {
        let h = try await GatewayHarness(yaml: GatewayHarness.simpleConfig())
        // The demo streams /bytes with a length, /echo of a chunked request without one.
        let answer = try await TestHTTPClient.raw(port: h.port, "GET /bytes?n=5 HTTP/1.0\r\nHost: x\r\n\r\n")
        #expect(answer.hasPrefix("HTTP/1.0 200 OK"))
        #expect(!answer.lowercased().contains("transfer-encoding"))
    }

    @Test func expectContinueIsAnsweredByTheGateway() async throws {
        let h = try await GatewayHarness(yaml: GatewayHarness.simpleConfig())
        let request = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
        // The raw client sends head and body together; the gateway still answers 100 first.
        let answer = try await TestHTTPClient.raw(port: h.port, request + "hello")
        #expect(answer.hasPrefix("HTTP/1.1 100 Continue"))
        #expect(answer.contains("HTTP/1.1 200 OK"))
        #expect(answer.hasSuffix("hello"))
    }
}

/// An `AsyncSequence` over fixed chunks, for chunked uploads; with an `interval`, each chunk after
/// the first comes that long after the one before (a slow but moving client).
struct AsyncStreamOf: AsyncSequence, Sendable {
    typealias Element = [UInt8]
    let chunks: [[UInt8]]
    let interval: Duration?
    init(_ chunks: [[UInt8]], interval: Duration? = nil) {
        self.chunks = chunks
        self.interval = interval
    }
    struct AsyncIterator: AsyncIteratorProtocol {
        var index = 0
        let chunks: [[UInt8]]
        let interval: Duration?
        mutating func next() async -> [UInt8]? {
            guard index < chunks.count else { return nil }
            if index > 0, let interval { try? await Task.sleep(for: interval) }
            defer { index += 1 }
            return chunks[index]
        }
    }
    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(chunks: chunks, interval: interval) }
}

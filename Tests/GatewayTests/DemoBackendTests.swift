import Foundation
import NIOHTTP1
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The real `gateway demo-backend` binary, over real sockets: the gateway's own end-to-end
/// tests stand on it behaving exactly like this.
@Suite struct DemoBackendTests {
    /// A running demo backend and the port it listens on.
    struct Backend {
        var process: ChildProcess
        var port: Int
    }

    static func start(
        name: String = "demo",
        extra: [String] = ["--log-requests"],
        environment: [String: String] = [:]
    ) async throws -> Backend {
        // Port 0: the backend takes a free port and names it, so parallel tests never race for
        // a port that an outgoing connection could take between choosing and binding.
        let process = try ChildProcess.gateway(
            ["demo-backend", "--port", "0", "--name", name] + extra,
            environment: environment
        )
        let line = try await process.waitForOutput(containing: "listening on 127.0.0.1:", in: .stdout)
        return Backend(process: process, port: try GatewayHarness.port(in: line, after: "listening on 127.0.0.1:"))
    }

    // MARK: Endpoints

    @Test func rootNamesTheBackendAndItsPid() async throws {
        let backend = try await Self.start(name: "shop-1")
        let response = try await TestHTTPClient.get(port: backend.port, path: "/")
        #expect(response.status == .ok)
        #expect(response.header("content-type")?.hasPrefix("text/plain") == true)
        #expect(response.bodyString == "shop-1 pid \(backend.process.pid)\n")
        let line = try await backend.process.waitForOutput(containing: "listening", in: .stdout)
        #expect(line == "demo-backend shop-1 listening on 127.0.0.1:\(backend.port) pid \(backend.process.pid)")
    }

    @Test func headersAreReturnedAsReceived() async throws {
        let backend = try await Self.start()
        let response = try await TestHTTPClient.get(
            port: backend.port,
            path: "/headers?x=1",
            headers: [("X-Forwarded-For", "10.0.0.1"), ("x-forwarded-for", "10.0.0.2"), ("X-Quote", "a\"b")]
        )
        #expect(response.status == .ok)
        #expect(response.header("content-type") == "application/json")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
        #expect(object["_method"] as? String == "GET")
        #expect(object["_uri"] as? String == "/headers?x=1")
        #expect(object["x-forwarded-for"] as? [String] == ["10.0.0.1", "10.0.0.2"])
        #expect(object["x-quote"] as? [String] == ["a\"b"])
        #expect(object["host"] as? [String] == ["127.0.0.1:\(backend.port)"])
    }

    @Test func sleepAnswersAfterTheDelay() async throws {
        let backend = try await Self.start()
        let start = ContinuousClock.now
        let response = try await TestHTTPClient.get(port: backend.port, path: "/sleep?ms=200")
        #expect(ContinuousClock.now - start >= .milliseconds(200))
        #expect(response.status == .ok)
        #expect(response.bodyString == "slept 200 ms\n")
        let bad = try await TestHTTPClient.get(port: backend.port, path: "/sleep?ms=soon")
        #expect(bad.status == .badRequest)
    }

    @Test func echoStreamsAMegabyteBack() async throws {
        let backend = try await Self.start()
        let body = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }
        try await TestHTTPClient.withConnection(port: backend.port) { client in
            let response = try await client.request(
                .POST,
                "/echo",
                headers: [("Content-Type", "application/x-test")],
                body: body
            )
            #expect(response.status == .ok)
            #expect(response.header("content-type") == "application/x-test")
            #expect(response.header("content-length") == String(body.count))
            #expect(response.body == body)

            // Chunked in, chunked out, on the same kept-alive connection.
            let chunks = AsyncStream<[UInt8]> { continuation in
                for start in stride(from: 0, to: body.count, by: 100_000) {
                    continuation.yield(Array(body[start..<min(start + 100_000, body.count)]))
                }
                continuation.finish()
            }
            let chunked = try await client.request(.PUT, "/echo", chunks: chunks)
            #expect(chunked.status == .ok)
            #expect(chunked.header("transfer-encoding") == "chunked")
            #expect(chunked.header("content-length") == nil)
            #expect(chunked.body == body)
            #expect(client.isOpen)
        }
    }

    @Test func echoAnswersExpectContinue() async throws {
        let backend = try await Self.start()
        let response = try await TestHTTPClient.withConnection(port: backend.port) { client in
            try await client.request(.POST, "/echo", headers: [("Expect", "100-continue")], body: Array("hi".utf8))
        }
        #expect(response.informational.map(\.status) == [.continue])
        #expect(response.bodyString == "hi")
    }

    @Test func statusCodes() async throws {
        let backend = try await Self.start()
        try await TestHTTPClient.withConnection(port: backend.port) { client in
            let teapot = try await client.request(.GET, "/status/418")
            #expect(teapot.status.code == 418)
            #expect(teapot.bodyString == "status 418\n")
            let unavailable = try await client.request(.GET, "/status/503")
            #expect(unavailable.status == .serviceUnavailable)
            let noContent = try await client.request(.GET, "/status/204")
            #expect(noContent.status == .noContent)
            #expect(noContent.body.isEmpty)
            for invalid in ["/status/100", "/status/99", "/status/600", "/status/abc"] {
                let response = try await client.request(.GET, invalid)
                #expect(response.status == .badRequest, "\(invalid)")
            }
        }
    }

    @Test func bytesStreamsTheRequestedLength() async throws {
        let backend = try await Self.start()
        try await TestHTTPClient.withConnection(port: backend.port) { client in
            let response = try await client.request(.GET, "/bytes?n=5000000")
            #expect(response.status == .ok)
            #expect(response.header("content-length") == "5000000")
            #expect(response.body.count == 5_000_000)
            let empty = try await client.request(.GET, "/bytes?n=0")
            #expect(empty.body.isEmpty)
            let head = try await client.request(.HEAD, "/bytes?n=123")
            #expect(head.header("content-length") == "123")
            #expect(head.body.isEmpty)
            let tooMany = try await client.request(.GET, "/bytes?n=\((1 << 30) + 1)")
            #expect(tooMany.status == .badRequest)
        }
    }

    @Test func healthAndUnknownPaths() async throws {
        let backend = try await Self.start()
        let health = try await TestHTTPClient.get(port: backend.port, path: "/health")
        #expect(health.status == .ok)
        #expect(health.bodyString == "ok\n")
        let missing = try await TestHTTPClient.get(port: backend.port, path: "/nope")
        #expect(missing.status == .notFound)
        let plainWS = try await TestHTTPClient.get(port: backend.port, path: "/ws")
        #expect(plainWS.status == .upgradeRequired)
    }

    @Test func keepAliveAndConnectionClose() async throws {
        let backend = try await Self.start()
        try await TestHTTPClient.withConnection(port: backend.port) { client in
            for _ in 0..<5 {
                let response = try await client.request(.GET, "/health")
                #expect(response.status == .ok)
                #expect(response.header("connection") == nil)
            }
            #expect(client.isOpen)
            let last = try await client.request(.GET, "/health", headers: [("Connection", "close")])
            #expect(last.header("connection") == "close")
            #expect(await client.waitForServerClose())
        }
    }

    @Test func malformedRequestGets400() async throws {
        let backend = try await Self.start()
        let answer = try await TestHTTPClient.raw(port: backend.port, "GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
        #expect(answer.hasPrefix("HTTP/1.1 400"))
    }

    @Test func webSocketEcho() async throws {
        let backend = try await Self.start()
        var bytes = Array(
            """
            GET /ws HTTP/1.1\r
            Host: 127.0.0.1:\(backend.port)\r
            Upgrade: websocket\r
            Connection: Upgrade\r
            Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r
            Sec-WebSocket-Version: 13\r
            \r

            """.utf8
        )
        bytes += Self.maskedFrame(opcode: 0x1, payload: Array("hello".utf8))
        bytes += Self.maskedFrame(opcode: 0x8, payload: [0x03, 0xE8])  // close, 1000
        let answer = try await TestHTTPClient.rawBytes(port: backend.port, bytes: bytes)
        let text = String(decoding: answer, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"))
        #expect(text.lowercased().contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=\r\n"))
        let frames = try #require(Self.framesAfterHead(answer))
        #expect(frames == [0x81, 0x05] + Array("hello".utf8) + [0x88, 0x02, 0x03, 0xE8])
    }

    // MARK: Port selection

    @Test func sigtermWithNoConnectionOpenExitsZero() async throws {
        // The drain has nothing to wait for: that path once dropped an uncompleted promise,
        // which a debug build turns into a crash.
        let backend = try await Self.start()
        backend.process.terminate(signal: SIGTERM)
        #expect(try await backend.process.waitForExit() == 0)
    }

    @Test func portComesFromTheEnvironment() async throws {
        // PORT=0 (any free port) still proves the variable is read: without it the backend refuses to start.
        let process = try ChildProcess.gateway(["demo-backend", "--name", "env"], environment: ["PORT": "0"])
        let line = try await process.waitForOutput(containing: "listening on 127.0.0.1:", in: .stdout)
        let port = try GatewayHarness.port(in: line, after: "listening on 127.0.0.1:")
        let response = try await TestHTTPClient.get(port: port, path: "/")
        #expect(response.bodyString.hasPrefix("env pid "))
    }

    @Test func noPortIsAnErrorNamingBothSources() async throws {
        let process = try ChildProcess(
            executable: GatewayBinary.path,
            arguments: ["demo-backend"],
            environment: ProcessInfo.processInfo.environment.filter { $0.key != "PORT" },
            inheritEnvironment: false
        )
        #expect(try await process.waitForExit() != 0)
        let line = try await process.waitForOutput(containing: "--port", in: .stderr)
        #expect(line.contains("$PORT"))
    }

    // MARK: Graceful shutdown

    @Test func sigtermLetsARequestInFlightFinish() async throws {
        let backend = try await Self.start()
        try await TestHTTPClient.withConnection(port: backend.port) { idle in
            // Make sure this connection has been accepted and served before the signal.
            #expect(try await idle.request(.GET, "/health").status == .ok)
            async let slow = TestHTTPClient.get(port: backend.port, path: "/sleep?ms=1000")
            try await backend.process.waitForOutput(containing: "request GET /sleep?ms=1000", in: .stdout)
            backend.process.terminate(signal: SIGTERM)

            // The idle keep-alive connection is closed at once ...
            #expect(await idle.waitForServerClose(timeout: .seconds(5)))
            // ... while the request in flight gets its answer, marked as the last one.
            let response = try await slow
            #expect(response.status == .ok)
            #expect(response.bodyString == "slept 1000 ms\n")
            #expect(response.header("connection") == "close")
        }
        #expect(try await backend.process.waitForExit(timeout: .seconds(10)) == 0)
        try await backend.process.waitForOutput(containing: "demo-backend demo stopped", in: .stdout)
        // Nothing listens any more.
        await #expect(throws: (any Error).self) {
            try await TestHTTPClient.get(port: backend.port, path: "/health")
        }
    }

    @Test func drainTimeoutClosesWhatIsLeft() async throws {
        let backend = try await Self.start(extra: ["--log-requests", "--shutdown-timeout", "0.3"])
        async let slow = TestHTTPClient.get(port: backend.port, path: "/sleep?ms=60000")
        try await backend.process.waitForOutput(containing: "request GET /sleep?ms=60000", in: .stdout)
        let signalled = ContinuousClock.now
        backend.process.terminate(signal: SIGINT)
        do {
            let response = try await slow
            Issue.record("expected the connection to be closed, got \(response.status)")
        } catch {
            // Closed by the drain timeout: what this test wants.
        }
        #expect(try await backend.process.waitForExit(timeout: .seconds(10)) == 0)
        #expect(ContinuousClock.now - signalled < .seconds(10))
        try await backend.process.waitForOutput(containing: "drain timed out", in: .stdout)
    }

    @Test func webSocketIsToldGoingAwayOnShutdown() async throws {
        let backend = try await Self.start(extra: ["--log-requests", "--shutdown-timeout", "0.5"])
        let handshake = Array(
            """
            GET /ws HTTP/1.1\r
            Host: 127.0.0.1\r
            Upgrade: websocket\r
            Connection: Upgrade\r
            Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r
            Sec-WebSocket-Version: 13\r
            \r

            """.utf8
        )
        async let answer = TestHTTPClient.rawBytes(port: backend.port, bytes: handshake, timeout: .seconds(10))
        try await backend.process.waitForOutput(containing: "upgrade /ws", in: .stdout)
        // The upgrade is logged just before it completes. Should the signal land in between,
        // NIO's pipeline handler replays the quiesce event to the WebSocket handler once it is in.
        backend.process.terminate(signal: SIGTERM)
        let frames = try #require(Self.framesAfterHead(try await answer))
        #expect(frames == [0x88, 0x02, 0x03, 0xE9])  // close, 1001 Going Away
        #expect(try await backend.process.waitForExit() == 0)
    }

    // MARK: Helpers

    /// A client-to-server frame (clients must mask).
    static func maskedFrame(opcode: UInt8, payload: [UInt8]) -> [UInt8] {
        precondition(payload.count < 126)
        let mask: [UInt8] = [0x12, 0x34, 0x56, 0x78]
        return [0x80 | opcode, 0x80 | UInt8(payload.count)] + mask
            + payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
    }

    /// The bytes after the first `\r\n\r\n`.
    static func framesAfterHead(_ bytes: [UInt8]) -> [UInt8]? {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard bytes.count >= 4 else { return nil }
        for index in 0...(bytes.count - 4) where Array(bytes[index..<index + 4]) == separator {
            return Array(bytes[(index + 4)...])
        }
        return nil
    }
}

#if os(Linux)
extension DemoBackendTests {
    /// The echo streams: 100 MB through it must not grow the backend by anything like 100 MB.
    @Test func echoDoesNotHoldTheBodyInMemory() async throws {
        let backend = try await Self.start()
        let total = 100 * 1024 * 1024
        let response = try await TestHTTPClient.withConnection(port: backend.port, timeout: .seconds(120)) { client in
            try await client.request(.POST, "/echo", chunks: GeneratedChunks(totalBytes: total), keepBody: false)
        }
        #expect(response.status == .ok)
        #expect(response.bodyCount == total)
        let peak = try #require(Self.peakResidentKilobytes(pid: backend.process.pid))
        #expect(peak < 80 * 1024, "peak resident set \(peak) kB")
    }

    /// `VmHWM` from /proc: the most memory the process has had resident.
    static func peakResidentKilobytes(pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            return Int(line.dropFirst("VmHWM:".count).split(whereSeparator: \.isWhitespace).first ?? "")
        }
        return nil
    }
}
#endif

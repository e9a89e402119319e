import Foundation
import NIOCore
import Testing

/// HTTP/1.1 rules a front proxy must keep, written as raw bytes: Host and request-target
/// (RFC 9112 3.2), CONNECT, 100-continue for HTTP/1.0, a malformed request behind a valid one,
/// upgrades the backend refuses, `Upgrade: h2c`, and the bytes around a WebSocket's 101.
@Suite(.timeLimit(.minutes(2)))
struct HTTP1ConformanceEndToEndTests {
    static func harness(_ backend: RecordingBackend, extra: String = "") async throws -> GatewayHarness {
        try await SmugglingEndToEndTests.harness(backend, extra: extra)
    }

    static func statuses(_ answer: String) -> [Int] {
        RawResponses.parse(Array(answer.utf8), closed: true).map(\.status)
    }

    // MARK: Host and request-target

    @Test(arguments: [
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a.example:99999\r\n\r\n",
    ])
    func aMissingDuplicateOrInvalidHostIs400(request: String) async throws {
        let backend = try await RecordingBackend()
        let h = try await Self.harness(backend)
        let answer = try await TestHTTPClient.raw(port: h.port, request, responses: 1)
        #expect(answer.hasPrefix("HTTP/1.1 400"), "\(answer)")
        #expect(answer.lowercased().contains("connection: close"))
        #expect(backend.requests.isEmpty)
    }

    @Test func anHTTP10RequestNeedsNoHost() async throws {
        let backend = try await RecordingBackend()
        let h = try await Self.harness(backend)
        let answer = try await TestHTTPClient.raw(port: h.port, "GET /old HTTP/1.0\r\n\r\n", responses: 1)
        #expect(answer.hasPrefix("HTTP/1.0 200"), "\(answer)")
    }

    /// An absolute-form target is routed by its authority, which replaces Host; the backend gets
    /// the origin form.
    @Test func anAbsoluteFormTargetReplacesHostAndIsRoutedByIt() async throws {
        let backend = try await RecordingBackend()
        let other = try await RecordingBackend()
        let yaml = """
            listen: {listen}
            admin: {listen: {admin}}
            deployments:
              - name: shop
                hosts: [shop.example]
                backends: [127.0.0.1:\(backend.port)]
              - name: other
                backends: [127.0.0.1:\(other.port)]
            """
        let h = try await GatewayHarness(backends: 0, yaml: yaml)
        let answer = try await TestHTTPClient.raw(
            port: h.port, "GET http://Shop.Example:8080/path?q=1 HTTP/1.1\r\nHost: wrong.example\r\n\r\n", responses: 1)
        #expect(answer.hasPrefix("HTTP/1.1 200"), "\(answer)")
        let seen = try #require(try await SmugglingEndToEndTests.requests(backend, count: 1).first)
        #expect(seen.uri == "/path?q=1")
        #expect(seen.header("host") == "Shop.Example:8080")
        #expect(other.requests.isEmpty)
    }

    @Test func connectGetsAFramed405AndTheConnectionCloses() async throws {
        let backend = try await RecordingBackend()
        let h = try await Self.harness(backend)
        let started = ContinuousClock.now
        let answer = try await TestHTTPClient.raw(
            port: h.port, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", timeout: .seconds(10))
        #expect(ContinuousClock.now - started < .seconds(8), "the connection was held")
        let responses = RawResponses.parse(Array(answer.utf8))
        #expect(responses.map(\.status) == [405], "\(answer)")
        #expect(answer.lowercased().contains("content-length:"))
        #expect(backend.requests.isEmpty)
    }

    @Test func anHTTP10ClientNeverGets100Continue() async throws {
        let backend = try await RecordingBackend()
        let h = try await Self.harness(backend)
        let answer = try await TestHTTPClient.raw(
            port: h.port, "POST /up HTTP/1.0\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc",
            responses: 1)
        #expect(answer.hasPrefix("HTTP/1.0 200"), "\(answer)")
        #expect(!answer.contains("100 Continue"))
    }

    // MARK: Pipelining

    /// The valid request's response comes first, then the 400 for the broken one behind it.
    @Test func aMalformedPipelinedRequestIsAnsweredAfterTheValidOne() async throws {
        let h = try await GatewayHarness(yaml: GatewayHarness.simpleConfig())
        let answer = try await TestHTTPClient.raw(
            port: h.port, "GET /sleep?ms=200 HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE\u{1}\r\n\r\n", responses: 2)
        #expect(Self.statuses(answer) == [200, 400], "\(answer)")
        try await h.waitForActive(0)
    }

    // MARK: Upgrades

    /// A refused upgrade (the backend answers 200) leaves an ordinary connection: the request
    /// behind it is answered.
    @Test func aRefusedUpgradeLeavesTheConnectionUsable() async throws {
        let backend = try await RecordingBackend()
        let h = try await Self.harness(backend)
        let request =
            "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
            + "GET /second HTTP/1.1\r\nHost: x\r\n\r\n"
        let answer = try await TestHTTPClient.raw(port: h.port, request, responses: 2)
        #expect(Self.statuses(answer) == [200, 200], "\(answer)")
        #expect(answer.contains("seen GET /second"))
    }

    /// `Upgrade: h2c` is not passed on: the request is answered over HTTP/1.1, the backend sees
    /// neither Upgrade nor HTTP2-Settings, and the connection goes on (curl --http2 does this).
    @Test func anH2cUpgradeIsAnsweredOverHTTP1AndNotForwarded() async throws {
        let backend = try await RecordingBackend()
        let h = try await Self.harness(backend)
        let request =
            "GET /first HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
            + "HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\nGET /second HTTP/1.1\r\nHost: x\r\n\r\n"
        let answer = try await TestHTTPClient.raw(port: h.port, request, responses: 2)
        #expect(Self.statuses(answer) == [200, 200], "\(answer)")
        let requests = try await SmugglingEndToEndTests.requests(backend, count: 2)
        #expect(requests.map(\.uri) == ["/first", "/second"])
        let first = try #require(requests.first)
        #expect(first.header("upgrade") == nil)
        #expect(first.header("http2-settings") == nil)
        #expect(first.header("connection")?.lowercased().contains("upgrade") != true)
        // One backend connection carried both: nothing was left hanging on it.
        #expect(Set(requests.map(\.connection)).count == 1)
    }

    /// Protocols other than WebSocket are tunnelled only when `upgrade_protocols` names them.
    @Test(arguments: [false, true])
    func otherUpgradesPassOnlyWhenConfigured(configured: Bool) async throws {
        let backend = try await RecordingBackend()
        let h = try await Self.harness(backend, extra: configured ? "upgrade_protocols: [websocket, my-proto]\n" : "")
        _ = try await TestHTTPClient.raw(
            port: h.port, "GET /p HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: My-Proto\r\n\r\n", responses: 1)
        let seen = try #require(try await SmugglingEndToEndTests.requests(backend, count: 1).first)
        #expect(seen.header("upgrade") == (configured ? "My-Proto" : nil))
    }

    @Test func curlHTTP2OnACleartextListenerGetsBothAnswers() async throws {
        let h = try await GatewayHarness(yaml: GatewayHarness.simpleConfig())
        let run = try await ExternalTool.run(
            "curl", ["-sS", "--http2", "-o", "/dev/null", "-o", "/dev/null", "-w", "%{http_code} %{http_version}\\n",
                     "http://127.0.0.1:\(h.port)/", "http://127.0.0.1:\(h.port)/?second"], timeout: .seconds(10))
        #expect(run.stdout == ["200 1.1", "200 1.1"], "\(run.output)")
    }

    /// The demo backend answers an h2c upgrade over HTTP/1.1 and closes the connection, rather
    /// than leave the client waiting on a connection it would no longer read.
    @Test func theDemoBackendAnswersAnH2cUpgradeAndCloses() async throws {
        let h = try await GatewayHarness(yaml: GatewayHarness.simpleConfig())
        let request =
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
            + "HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\nGET /?second HTTP/1.1\r\nHost: x\r\n\r\n"
        let started = ContinuousClock.now
        let answer = try await TestHTTPClient.raw(port: h.backendPorts[0], request, timeout: .seconds(10))
        #expect(ContinuousClock.now - started < .seconds(8), "the connection was held")
        #expect(Self.statuses(answer) == [200], "\(answer)")
        #expect(answer.lowercased().contains("connection: close"))
    }

    /// A backend that writes its 101 and a first frame in one write (a greeting): the frame
    /// reaches the client at once, every time, without the client sending anything.
    @Test func serverFirstBytesAfterThe101ArriveAtOnce() async throws {
        let greeting: [UInt8] = [0x81, 0x05] + Array("hello".utf8)
        let backend = try await RecordingBackend { _ in
            Array("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n".utf8) + greeting
        }
        let h = try await Self.harness(backend)
        for round in 0..<10 {
            let received = try await TestHTTPClient.rawBytes(
                port: h.port, bytes: Array(UpgradeEndToEndTests.handshake.utf8), timeout: .seconds(3)
            ) { received in received.count >= 4 && received.suffix(greeting.count) == greeting[...] }
            let text = String(decoding: received, as: UTF8.self)
            #expect(text.hasPrefix("HTTP/1.1 101"), "round \(round): \(text)")
            #expect(received.suffix(greeting.count) == greeting[...], "round \(round): \(text)")
        }
    }

    /// A client that writes its upgrade request and a first frame in one write: the backend gets
    /// the frame right after the request.
    @Test func clientBytesWithTheUpgradeRequestReachTheBackend() async throws {
        let backend = try await RecordingBackend { _ in
            Array("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n".utf8)
        }
        let h = try await Self.harness(backend)
        let frame = UpgradeEndToEndTests.textFrame("early")
        for round in 0..<10 {
            // One write: the request and the frame; the client reads until the 101's head.
            _ = try await TestHTTPClient.rawBytes(
                port: h.port, bytes: Array(UpgradeEndToEndTests.handshake.utf8) + frame, timeout: .seconds(3)
            ) { String(decoding: $0, as: UTF8.self).contains("\r\n\r\n") }
            // Both go out before the 101 comes back; the backend must see the frame.
            let deadline = ContinuousClock.now + .seconds(3)
            while backend.connections.count <= round || !backend.connections[round].suffix(frame.count).elementsEqual(frame),
                ContinuousClock.now < deadline
            {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(backend.connections.count > round && backend.connections[round].suffix(frame.count).elementsEqual(frame),
                    "round \(round): \(backend.connections.count > round ? backend.text(round) : "no connection")")
        }
    }
}

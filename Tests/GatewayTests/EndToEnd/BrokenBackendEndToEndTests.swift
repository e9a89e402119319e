import Foundation
import NIOCore
import Testing

/// Backends whose responses break HTTP/1.1 framing: each ends in the right answer to the client
/// (or a cut connection once a response had started), a backend connection that is never used
/// again, and no request left counted in flight.
@Suite(.timeLimit(.minutes(2)))
struct BrokenBackendEndToEndTests {
    typealias Reply = RecordingBackend.Reply

    static func response(_ status: Int, _ body: String, extra: String = "") -> [UInt8] {
        Array("HTTP/1.1 \(status) X\r\ncontent-length: \(body.utf8.count)\r\n\(extra)\r\n\(body)".utf8)
    }

    /// Two requests in a row from separate clients; returns the two answers' texts.
    static func twoClients(_ h: GatewayHarness) async throws -> (String, String) {
        let first = try await TestHTTPClient.raw(port: h.port, "GET /one HTTP/1.1\r\nHost: x\r\n\r\n", responses: 1)
        let second = try await TestHTTPClient.raw(port: h.port, "GET /two HTTP/1.1\r\nHost: x\r\n\r\n", responses: 1)
        return (first, second)
    }

    @Test func twoResponsesForOneRequestNeverReachTheNextClient() async throws {
        let backend = try await RecordingBackend { request in
            Reply(bytes: Self.response(200, "for \(request.uri)") + Self.response(200, "EXTRA"))
        }
        let h = try await SmugglingEndToEndTests.harness(backend)
        let (first, second) = try await Self.twoClients(h)
        #expect(first.hasSuffix("for /one"), "\(first)")
        #expect(second.hasSuffix("for /two"), "\(second)")
        #expect(!second.contains("EXTRA"))
        try await h.waitForActive(0)
    }

    /// A response sent unasked a moment after the first: the idle pooled connection that gets it
    /// is closed, so it never answers the next request.
    @Test func anUnaskedLaterResponseClosesTheIdleConnection() async throws {
        let backend = try await RecordingBackend { request in
            Reply(bytes: Self.response(200, "for \(request.uri)"), later: (.milliseconds(100), Self.response(200, "EXTRA")))
        }
        let h = try await SmugglingEndToEndTests.harness(backend)
        let first = try await TestHTTPClient.raw(port: h.port, "GET /one HTTP/1.1\r\nHost: x\r\n\r\n", responses: 1)
        #expect(first.hasSuffix("for /one"))
        // The stray bytes come, and the connection they came on is dropped.
        let deadline = ContinuousClock.now + .seconds(5)
        while backend.closedConnections < 1, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(backend.closedConnections == 1)
        let second = try await TestHTTPClient.raw(port: h.port, "GET /two HTTP/1.1\r\nHost: x\r\n\r\n", responses: 1)
        #expect(second.hasSuffix("for /two"), "\(second)")
        #expect(!second.contains("EXTRA"))
        #expect(backend.requests.map(\.connection) == [0, 1], "a new backend connection for the second request")
    }

    /// The backend answers before reading the upload: the client gets that answer, and the
    /// backend connection (its request half-sent) is not reused.
    @Test func aResponseBeforeTheRequestBodyWasReadIsForwardedAndTheConnectionDropped() async throws {
        let backend = try await RecordingBackend(answerAtHead: true) { _ in
            Reply(bytes: Self.response(413, "too big", extra: "connection: close\r\n"), close: true)
        }
        let h = try await SmugglingEndToEndTests.harness(backend)
        let answer = try await TestHTTPClient.raw(
            port: h.port, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + String(repeating: "a", count: 1000),
            responses: 1)
        #expect(answer.hasPrefix("HTTP/1.1 413"), "\(answer)")
        try await h.waitForActive(0)
    }

    /// A body shorter than its Content-Length, then the close: the response had started, so the
    /// client's connection is cut (never completed as if whole); nothing stays in flight.
    @Test func aTruncatedBodyCutsTheClientConnection() async throws {
        let backend = try await RecordingBackend { _ in
            Reply(bytes: Array("HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this".utf8), close: true)
        }
        let h = try await SmugglingEndToEndTests.harness(backend)
        let answer = try await TestHTTPClient.raw(port: h.port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", timeout: .seconds(5))
        #expect(answer.hasPrefix("HTTP/1.1 200"), "\(answer)")
        #expect(RawResponses.count(in: Array(answer.utf8)) == 0, "the client must not see a complete response")
        try await h.waitForActive(0)
        let ep = GatewayHarness.entryPoint(try await h.stats(), "default")
        // Counted as the gateway's failure, never as a success.
        #expect((ep["status"] as? [String: Any])?["2xx"] as? Int == 0, "\(ep)")
        #expect((ep["status"] as? [String: Any])?["5xx"] as? Int == 1, "\(ep)")
    }

    @Test(arguments: [
        "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nbroken header line\r\n\r\nhello",
        "HTTP/1.1 2000 OK\r\ncontent-length: 0\r\n\r\n",
        "NONSENSE\r\n\r\n",
        "HTTP/1.1 200 OK\r\nx-huge: " + String(repeating: "h", count: 200_000) + "\r\ncontent-length: 0\r\n\r\n",
    ])
    func aMalformedOrHugeHeadIs502(raw: String) async throws {
        let backend = try await RecordingBackend { _ in Reply(bytes: Array(raw.utf8)) }
        let h = try await SmugglingEndToEndTests.harness(backend)
        let answer = try await TestHTTPClient.raw(port: h.port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", responses: 1)
        #expect(answer.hasPrefix("HTTP/1.1 502"), "\(answer.prefix(300))")
        try await h.waitForActive(0)
        // The backend connection is gone: the next request goes on a new one.
        _ = try await TestHTTPClient.raw(port: h.port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", responses: 1)
        #expect(backend.requests.map(\.connection) == [0, 1])
    }

    /// Interim responses: 103 Early Hints passes through before the final answer; a 100 from
    /// the backend is not repeated (the gateway answered 100-continue itself).
    @Test func interimResponsesPassOrAreSwallowed() async throws {
        let backend = try await RecordingBackend { _ in
            Reply(bytes: Array("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n".utf8)
                + Self.response(200, "done"))
        }
        let h = try await SmugglingEndToEndTests.harness(backend)
        let answer = try await TestHTTPClient.raw(
            port: h.port, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nhi", responses: 1)
        let statuses = RawResponses.parse(Array(answer.utf8)).map(\.status)
        #expect(statuses == [100, 103, 200], "\(answer)")
        #expect(answer.contains("link: </a.css>; rel=preload"))
        try await h.waitForActive(0)
    }
}

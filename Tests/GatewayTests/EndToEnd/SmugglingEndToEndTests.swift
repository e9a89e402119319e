import Foundation
import Testing

/// Request smuggling: what reaches the backend is exactly the message the gateway parsed, framed
/// so the backend parses the same. Each request is written as raw bytes, and a `RecordingBackend`
/// shows what arrived and how a server understands it.
@Suite(.timeLimit(.minutes(2)))
struct SmugglingEndToEndTests {
    /// A request line and headers that, taken as a body, a backend would read as a second request.
    static let smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n"

    static func harness(_ backend: RecordingBackend, h2c: Bool = false, extra: String = "") async throws -> GatewayHarness {
        let yaml = (h2c ? HTTP2EndToEndTests.config(extra: extra) : GatewayHarness.simpleConfig(extra: extra))
            .replacingOccurrences(of: "{backends}", with: "[127.0.0.1:\(backend.port)]")
        return try await GatewayHarness(backends: 0, yaml: yaml)
    }

    /// Waits (bounded) until the backend has parsed `count` requests.
    static func requests(_ backend: RecordingBackend, count: Int) async throws -> [RecordingBackend.Request] {
        let deadline = ContinuousClock.now + .seconds(5)
        while backend.requests.count < count, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        return backend.requests
    }

    static func chunked(_ text: String) -> String {
        String(text.utf8.count, radix: 16) + "\r\n" + text + "\r\n0\r\n\r\n"
    }

    @Test(arguments: ["GET", "HEAD", "DELETE", "OPTIONS", "PURGE", "POST"])
    func aChunkedBodyReachesTheBackendAsABodyWhateverTheMethod(method: String) async throws {
        let backend = try await RecordingBackend()
        let h = try await Self.harness(backend)
        let request = "\(method) /front HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + Self.chunked(Self.smuggled)
        // A HEAD response has a length and no body: its head is the whole answer.
        let answer =
            method == "HEAD"
            ? try await TestHTTPClient.raw(port: h.port, bytes: Array(request.utf8)) { $0.count > 4 && $0.suffix(4) == [13, 10, 13, 10] }
            : try await TestHTTPClient.raw(port: h.port, request, responses: 1)
        #expect(answer.hasPrefix("HTTP/1.1 200"), "\(answer)")
        let requests = try await Self.requests(backend, count: 1)
        #expect(requests.count == 1, "\(requests)\n\(backend.text(0))")
        #expect(requests.first?.method == method)
        #expect(requests.first?.body == Array(Self.smuggled.utf8), "\(backend.text(0))")
        #expect(requests.first?.header("transfer-encoding") == "chunked")
        #expect(backend.parseErrors.isEmpty)
    }

    @Test func aTraceWithAContentLengthKeepsItsFraming() async throws {
        let backend = try await RecordingBackend()
        let h = try await Self.harness(backend)
        let request = "TRACE /front HTTP/1.1\r\nHost: x\r\nContent-Length: \(Self.smuggled.utf8.count)\r\n\r\n" + Self.smuggled
        _ = try await TestHTTPClient.raw(port: h.port, request, responses: 1)
        let requests = try await Self.requests(backend, count: 1)
        #expect(requests.count == 1, "\(backend.text(0))")
        #expect(requests.first?.body == Array(Self.smuggled.utf8))
        #expect(requests.first?.header("content-length") == String(Self.smuggled.utf8.count))
    }

    @Test func connectionCannotRemoveTheFramingHostOrForwardingHeaders() async throws {
        let backend = try await RecordingBackend()
        let h = try await Self.harness(backend)
        let body = Self.smuggled
        let request =
            "POST /front HTTP/1.1\r\nHost: shop.example\r\n"
            + "Connection: content-length, host, x-forwarded-for, x-forwarded-proto, x-forwarded-host\r\n"
            + "Content-Length: \(body.utf8.count)\r\n\r\n" + body
        _ = try await TestHTTPClient.raw(port: h.port, request, responses: 1)
        let requests = try await Self.requests(backend, count: 1)
        #expect(requests.count == 1, "\(backend.text(0))")
        let seen = try #require(requests.first)
        #expect(seen.body == Array(body.utf8))
        #expect(seen.header("host") == "shop.example")
        #expect(seen.headers("x-forwarded-for") == ["127.0.0.1"])
        #expect(seen.header("x-forwarded-proto") == "http")
        #expect(seen.header("x-forwarded-host") == "shop.example")
    }

    @Test func aRequestWithoutABodyCarriesNoFraming() async throws {
        let backend = try await RecordingBackend()
        let h = try await Self.harness(backend)
        _ = try await TestHTTPClient.raw(port: h.port, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n", responses: 1)
        let requests = try await Self.requests(backend, count: 1)
        let seen = try #require(requests.first)
        #expect(seen.header("content-length") == nil)
        #expect(seen.header("transfer-encoding") == nil)
        #expect(backend.text(0).hasSuffix("\r\n\r\n"))
    }

    /// The attack the issue reported: the smuggled bytes, if taken as a request, would make the
    /// next client's request on the pooled connection the attacker's body. Here two clients go
    /// one after the other; each must get its own answer and the backend must see two requests.
    @Test func theNextClientGetsItsOwnResponse() async throws {
        let backend = try await RecordingBackend()
        let h = try await Self.harness(backend)
        let prefix = "POST /attacker HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n\r\n"
        let attack = "GET /front HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + Self.chunked(prefix)
        let first = try await TestHTTPClient.raw(port: h.port, attack, responses: 1)
        #expect(first.contains("seen GET /front body=\(prefix.utf8.count)"), "\(first)")
        let victim = try await h.get("/victim", headers: [("cookie", "secret")])
        #expect(String(decoding: victim.body, as: UTF8.self).contains("seen GET /victim"))
        let requests = try await Self.requests(backend, count: 2)
        #expect(requests.map(\.uri) == ["/front", "/victim"], "\(requests)")
    }

    @Test func aTransferCodingOtherThanChunkedGets501() async throws {
        let backend = try await RecordingBackend()
        let h = try await Self.harness(backend)
        let request = "POST /front HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" + Self.chunked("abc")
        let answer = try await TestHTTPClient.raw(port: h.port, request, responses: 1)
        #expect(answer.hasPrefix("HTTP/1.1 501"), "\(answer)")
        #expect(backend.connections.isEmpty || backend.requests.isEmpty)
    }

    @Test(arguments: [
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc",
    ])
    func ambiguousFramingIsRefusedBeforeTheBackend(request: String) async throws {
        let backend = try await RecordingBackend()
        let h = try await Self.harness(backend)
        let answer = try await TestHTTPClient.raw(port: h.port, request, responses: 1)
        #expect(answer.hasPrefix("HTTP/1.1 400") || answer.hasPrefix("HTTP/1.1 501"), "\(answer)")
        #expect(backend.requests.isEmpty, "\(backend.requests)")
    }

    /// h2c: a TRACE with a body (its length announced) reaches the backend framed.
    @Test func anH2TraceWithABodyReachesTheBackendFramed() async throws {
        let backend = try await RecordingBackend()
        let h = try await Self.harness(backend, h2c: true)
        let report = try await HTTP2AbuseEndToEndTests.peer(
            ["streams", "--count", "1", "--method", "TRACE", "--body-bytes", "40"], port: h.port)
        #expect((report["statuses"] as? [String: Int])?["200"] == 1, "\(report)")
        let requests = try await Self.requests(backend, count: 1)
        #expect(requests.count == 1, "\(backend.connections.map { String(decoding: $0, as: UTF8.self) })")
        #expect(requests.first?.method == "TRACE")
        #expect(requests.first?.body.count == 40)
        #expect(backend.parseErrors.isEmpty)
    }
}

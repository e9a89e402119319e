import Foundation
import Testing

/// h2spec's stream-state, stream-identifier and connection-preface cases (RFC 9113 3.4, 5.1,
/// 5.1.1), sent frame by frame by `Fixtures/h2peer.py conformance` to a real gateway: what
/// the gateway answers each with. Beside them, legitimate traffic that looks close to a
/// violation (trailers, a skipped stream id, DATA still in flight on a stream the gateway reset)
/// must go on being served.
@Suite struct HTTP2ConformanceEndToEndTests {
    /// Listener 0 is `[http1, h2c]`, listener 1 is `[h2c]` only. The body limit lets a request
    /// be answered (413) and reset by the gateway before its body is sent.
    static let config = """
        admin: {listen: {admin}}
        limits: {max_body_bytes: 1000}
        listeners:
          - listen: {listen}
            protocols: [http1, h2c]
          - listen: {listen}
            protocols: [h2c]
        deployments:
          - name: shop
            backends: {backends}
        """

    /// One case's report.
    static func run(_ name: String, port: Int) async throws -> [String: Any] {
        try await HTTP2AbuseEndToEndTests.peer(["conformance", "--case", name, "--settle-ms", "300"], port: port)
    }

    /// A connection error (RFC 9113 5.4.1): GOAWAY with `code`, then the connection closes.
    static func expectConnectionError(
        _ name: String, _ code: String, port: Int, sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let report = try await run(name, port: port)
        #expect(HTTP2AbuseEndToEndTests.goAwayError(report) == code, "\(name): \(report)", sourceLocation: sourceLocation)
        #expect(report["connection_closed"] as? Bool == true, "\(name): \(report)", sourceLocation: sourceLocation)
    }

    /// Served: the listed streams got these statuses; no GOAWAY, the connection still answers PING.
    static func expectServed(
        _ name: String, _ statuses: [String: Int], port: Int, sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> [String: Any] {
        let report = try await run(name, port: port)
        #expect(report["statuses"] as? [String: Int] == statuses, "\(name): \(report)", sourceLocation: sourceLocation)
        #expect(report["goaway"] is NSNull, "\(name): \(report)", sourceLocation: sourceLocation)
        #expect(report["barrier_acked"] as? Bool == true, "\(name): \(report)", sourceLocation: sourceLocation)
        #expect(report["connection_closed"] as? Bool == false, "\(name): \(report)", sourceLocation: sourceLocation)
        return report
    }

    /// 5.1 idle: anything but HEADERS or PRIORITY on a stream never opened.
    @Test func framesOnAnIdleStreamAreAConnectionErrorProtocolError() async throws {
        let h = try await GatewayHarness(yaml: Self.config)
        for name in ["idle-data", "idle-rst-stream", "idle-window-update", "idle-continuation"] {
            try await Self.expectConnectionError(name, "PROTOCOL_ERROR", port: h.port)
        }
    }

    /// 5.1 half-closed (remote): the client sent END_STREAM and then more on the stream, while
    /// the gateway is still answering it. A CONTINUATION outside a header block is PROTOCOL_ERROR
    /// (h2spec accepts either).
    @Test func framesAfterTheClientsEndStreamAreAConnectionErrorStreamClosed() async throws {
        let h = try await GatewayHarness(yaml: Self.config)
        try await Self.expectConnectionError("half-closed-data", "STREAM_CLOSED", port: h.port)
        try await Self.expectConnectionError("half-closed-headers", "STREAM_CLOSED", port: h.port)
        try await Self.expectConnectionError("half-closed-continuation", "PROTOCOL_ERROR", port: h.port)
    }

    /// 5.1 closed: END_STREAM both ways (the response is complete), then DATA or HEADERS on the
    /// stream. nghttp2 forgets closed streams and ignored these.
    @Test func framesOnAStreamClosedByEndStreamBothWaysAreAConnectionErrorStreamClosed() async throws {
        let h = try await GatewayHarness(yaml: Self.config)
        for name in ["closed-data", "closed-headers"] {
            try await Self.expectConnectionError(name, "STREAM_CLOSED", port: h.port)
        }
        try await Self.expectConnectionError("closed-continuation", "PROTOCOL_ERROR", port: h.port)
    }

    /// 5.1 closed: the client reset the stream, then sent DATA or HEADERS on it.
    @Test func framesOnAStreamTheClientResetAreAConnectionErrorStreamClosed() async throws {
        let h = try await GatewayHarness(yaml: Self.config)
        for name in ["reset-data", "reset-headers"] {
            try await Self.expectConnectionError(name, "STREAM_CLOSED", port: h.port)
        }
        try await Self.expectConnectionError("reset-continuation", "PROTOCOL_ERROR", port: h.port)
    }

    /// 5.1.1: a client's stream ids are odd and increase.
    @Test func anEvenOrSmallerStreamIDIsAConnectionErrorProtocolError() async throws {
        let h = try await GatewayHarness(yaml: Self.config)
        try await Self.expectConnectionError("even-stream-id", "PROTOCOL_ERROR", port: h.port)
        try await Self.expectConnectionError("smaller-stream-id", "PROTOCOL_ERROR", port: h.port)
    }

    /// What the rules above must not catch: trailers, a skipped stream id, and DATA the client
    /// sent before it saw the gateway's RST_STREAM (RFC 9113 5.1: ignored).
    @Test func legitimateFramesNearTheRulesAreServed() async throws {
        let h = try await GatewayHarness(yaml: Self.config)
        _ = try await Self.expectServed("trailers", ["1": 200], port: h.port)
        _ = try await Self.expectServed("skipped-stream-id", ["1": 200, "5": 200], port: h.port)
        let reset = try await Self.expectServed("after-gateway-reset-data", ["1": 413, "3": 200], port: h.port)
        let resets = reset["rst_streams"] as? [[String: Any]] ?? []
        #expect(resets.map { $0["error_name"] as? String } == ["NO_ERROR"], "\(reset)")
    }

    /// 3.5 on an `[http1, h2c]` listener: whatever starts with the HTTP/2 request line is HTTP/2,
    /// and a broken preface gets GOAWAY PROTOCOL_ERROR, not an HTTP/1.1 400.
    @Test func aBrokenPrefaceOnAMixedListenerIsAnHTTP2ConnectionError() async throws {
        let h = try await GatewayHarness(yaml: Self.config)
        let mixed = h.listenerPorts[0]
        let valid = try await Self.run("preface-valid", port: mixed)
        let first = valid["first_frame"] as? [String: Any]
        #expect(first?["type"] as? String == "SETTINGS" && first?["flags"] as? Int == 0, "\(valid)")
        try await Self.expectConnectionError("preface-bad-magic", "PROTOCOL_ERROR", port: mixed)
        try await Self.expectConnectionError("preface-no-settings", "PROTOCOL_ERROR", port: mixed)
        // Not the HTTP/2 request line: an HTTP/1.1 client with a bad request.
        let http1 = try await Self.run("preface-invalid", port: mixed)
        #expect((http1["first_bytes"] as? String)?.hasPrefix("HTTP/1.1 400") == true, "\(http1)")
    }

    /// 3.5 on an h2c-only listener: any broken preface gets GOAWAY PROTOCOL_ERROR, then the close.
    @Test func aBrokenPrefaceOnAnH2CListenerIsAConnectionErrorProtocolError() async throws {
        let h = try await GatewayHarness(yaml: Self.config)
        let h2c = h.listenerPorts[1]
        for name in ["preface-invalid", "preface-bad-magic", "preface-no-settings"] {
            try await Self.expectConnectionError(name, "PROTOCOL_ERROR", port: h2c)
        }
    }
}

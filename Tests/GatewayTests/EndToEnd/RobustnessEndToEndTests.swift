import Foundation
import NIOHTTP1
import Testing

/// Streaming, timeouts, body limits, metrics and signals: what a production proxy must get right
/// beyond the happy path.
@Suite(.timeLimit(.minutes(2)))
struct RobustnessEndToEndTests {
    /// 100 MB through gateway and echo backend, both directions streamed: the gateway's peak
    /// resident memory must stay far below the body's size.
    @Test func hundredMegabyteUploadIsStreamedNotBuffered() async throws {
        let h = try await GatewayHarness(yaml: GatewayHarness.simpleConfig())
        let total = 100 * 1024 * 1024
        let response = try await TestHTTPClient.withConnection(port: h.port, timeout: .seconds(90)) { client in
            try await client.request(.POST, "/echo", chunks: GeneratedChunks(totalBytes: total), keepBody: false)
        }
        #expect(response.status == .ok)
        #expect(response.bodyCount == total)
        let peak = try #require(DemoBackendTests.peakResidentKilobytes(pid: h.gateway.pid))
        #expect(peak < 80 * 1024, "gateway peak resident set \(peak) kB for a \(total / 1024) kB body")
    }

    @Test func silentBackendGets504AfterTheResponseTimeout() async throws {
        let h = try await GatewayHarness(
            yaml: GatewayHarness.simpleConfig(extra: "timeouts:\n  backend_response: 300ms\n")
        )
        let started = ContinuousClock.now
        let response = try await h.get("/sleep?ms=3000")
        #expect(response.status == .gatewayTimeout)
        #expect(ContinuousClock.now - started < .seconds(2))
        try await h.waitForActive(0)
        #expect(try await h.get("/").status == .ok)
    }

    @Test func slowRequestHeadGets408() async throws {
        let h = try await GatewayHarness(
            yaml: GatewayHarness.simpleConfig(extra: "timeouts:\n  request_header: 300ms\n")
        )
        // A head that never ends: the gateway answers 408 and closes (the read ends at the close).
        let answer = try await TestHTTPClient.raw(port: h.port, "GET / HTTP/1.1\r\nHost: x\r\n", timeout: .seconds(5))
        #expect(answer.hasPrefix("HTTP/1.1 408"))
    }

    @Test func bodyOverTheLimitGets413() async throws {
        let h = try await GatewayHarness(
            yaml: GatewayHarness.simpleConfig(extra: "limits:\n  max_body_bytes: 1000\n")
        )
        try await TestHTTPClient.withConnection(port: h.port) { client in
            let declared = try await client.request(.POST, "/echo", body: [UInt8](repeating: 1, count: 2000))
            #expect(declared.status == .payloadTooLarge)
        }
        try await TestHTTPClient.withConnection(port: h.port) { client in
            // /status answers only after the whole body, so the limit is hit before any response.
            let chunks = AsyncStreamOf([[UInt8](repeating: 2, count: 600), [UInt8](repeating: 3, count: 600)])
            let streamed = try await client.request(.POST, "/status/201", chunks: chunks)
            #expect(streamed.status == .payloadTooLarge)
        }
        try await TestHTTPClient.withConnection(port: h.port) { client in
            let fits = try await client.request(.POST, "/echo", body: [UInt8](repeating: 1, count: 1000))
            #expect(fits.status == .ok)
        }
        try await h.waitForActive(0)
    }

    @Test func metricsExposeTheCountsInPrometheusText() async throws {
        let h = try await GatewayHarness(yaml: GatewayHarness.simpleConfig())
        #expect(try await h.get("/").status == .ok)
        #expect(try await h.get("/status/503").status == .serviceUnavailable)
        let metrics = try await h.admin(.GET, "/metrics")
        #expect(metrics.status == .ok)
        #expect(metrics.header("content-type")?.hasPrefix("text/plain") == true)
        let text = metrics.bodyString
        #expect(text.contains("# TYPE gateway_requests_in_flight gauge"))
        #expect(text.contains(#"gateway_requests_in_flight{deployment="shop",entry_point="default"} 0"#))
        #expect(text.contains(#"gateway_requests_total{deployment="shop",entry_point="default"} 2"#))
        #expect(text.contains(#"gateway_responses_total{deployment="shop",entry_point="default",class="5xx"} 1"#))
        #expect(text.contains(#"gateway_requests_rejected_total{deployment="shop",entry_point="default",reason="global_limit"} 0"#))
    }

    @Test func aSecondSignalExitsAtOnce() async throws {
        let h = try await GatewayHarness(yaml: GatewayHarness.simpleConfig())
        let slow = Task { try? await h.get("/sleep?ms=8000") }
        try await h.waitForActive(1)
        h.gateway.terminate(signal: SIGTERM)
        try await h.gateway.waitForOutput(containing: "shutting down", timeout: .seconds(5))
        let started = ContinuousClock.now
        h.gateway.terminate(signal: SIGINT)
        let status = try await h.gateway.waitForExit(timeout: .seconds(5))
        #expect(status == 1)
        #expect(ContinuousClock.now - started < .seconds(3))
        // The gateway is gone, so the slow request ends at once; waiting for it keeps the harness
        // (and the backend process it owns) from outliving the test.
        _ = await slow.value
    }
}

import Foundation
import Testing

/// Misbehaving HTTP/2 clients (driven frame by frame by `Fixtures/h2peer.py`, on Python's `h2`)
/// are cut off with GOAWAY ENHANCE_YOUR_CALM while a normal client on another connection keeps
/// getting its 200s. One at a time: each floods as fast as it can, and the rest of the suite runs
/// beside it.
@Suite(.serialized) struct HTTP2AbuseEndToEndTests {
    static let peer = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/h2peer.py").path

    /// Runs one h2peer subcommand and returns its JSON report.
    static func peer(_ arguments: [String], port: Int, timeout: Int = 10) async throws -> [String: Any] {
        let run = try await ExternalTool.run(
            "python3", [Self.peer] + arguments + ["--port", String(port), "--timeout", String(timeout)],
            timeout: .seconds(timeout + 15))
        guard let line = run.stdout.last(where: { $0.hasPrefix("{") }),
            let json = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        else {
            throw TestSupportError("h2peer printed no report:\n\(run.output)")
        }
        guard json["ok"] as? Bool == true else { throw TestSupportError("h2peer could not run: \(line)\n\(run.output)") }
        return json
    }

    static func goAwayError(_ report: [String: Any]) -> String? {
        (report["goaway"] as? [String: Any])?["error_name"] as? String
    }

    /// Abuse on one connection while h2load, on its own connection, sends 200 requests.
    func abuse(_ arguments: [String], extra: String = "") async throws -> (report: [String: Any], normal: String, h: GatewayHarness) {
        let h = try await GatewayHarness(yaml: HTTP2EndToEndTests.config(extra: extra))
        let normal = try ExternalTool.start(
            "h2load", ["-n", "200", "-c", "1", "-m", "1", "http://127.0.0.1:\(h.port)/sleep?ms=5"])
        let report = try await Self.peer(arguments, port: h.port)
        #expect(try await normal.waitForExit(timeout: .seconds(30)) == 0)
        try await normal.waitForOutputToEnd()
        return (report, normal.stdoutLines.joined(separator: "\n"), h)
    }

    func expectCutOffWhileOthersServed(_ run: (report: [String: Any], normal: String, h: GatewayHarness)) async throws {
        #expect(Self.goAwayError(run.report) == "ENHANCE_YOUR_CALM", "\(run.report)")
        #expect(run.report["connection_closed"] as? Bool == true, "\(run.report)")
        #expect(run.normal.contains("requests: 200 total, 200 started, 200 done, 200 succeeded, 0 failed"), "\(run.normal)")
        let stats = try await run.h.stats()
        let h2 = (stats["protocols"] as? [String: Any])?["h2"] as? [String: Any]
        #expect(h2?["abusive_connections_closed"] as? Int == 1)
    }

    @Test func rapidResetClosesTheAbuser() async throws {
        let run = try await abuse(["rapid-reset", "--streams", "3000", "--path", "/sleep?ms=100"])
        try await expectCutOffWhileOthersServed(run)
        // Well under the 3000 opened: the rest never reached a backend.
        let backendTotal = GatewayHarness.entryPoint(try await run.h.stats(), "default")["total"] as? Int ?? 0
        #expect(backendTotal < 200 + 600, "entry point total \(backendTotal)")
    }

    @Test func continuationFloodClosesTheAbuser() async throws {
        try await expectCutOffWhileOthersServed(try await abuse(["continuation-flood", "--frames", "2000"]))
    }

    @Test func pingFloodClosesTheAbuser() async throws {
        try await expectCutOffWhileOthersServed(try await abuse(["ping-flood", "--count", "3000"]))
    }

    @Test func settingsFloodClosesTheAbuser() async throws {
        try await expectCutOffWhileOthersServed(try await abuse(["settings-flood", "--count", "3000"]))
    }

    @Test func zeroWindowStallIsCutOffAfterTheStallTimeout() async throws {
        let run = try await abuse(
            ["zero-window", "--streams", "3", "--path", "/bytes?n=200000"], extra: "http2: {stall_timeout: 1s}\n")
        try await expectCutOffWhileOthersServed(run)
        let seconds = run.report["seconds_until_close"] as? Double ?? 0
        // Stall noticed by a once-a-second check: closed between 1 and about 3 seconds in.
        #expect(seconds >= 1 && seconds < 5, "\(run.report)")
    }

    @Test func concurrentStreamLimitIsAnnouncedAndKept() async throws {
        let h = try await GatewayHarness(yaml: HTTP2EndToEndTests.config(extra: "http2: {max_concurrent_streams: 10}\n"))
        let report = try await Self.peer(["streams", "--count", "30", "--path", "/sleep?ms=100"], port: h.port)
        #expect((report["server_settings"] as? [String: Any])?["MAX_CONCURRENT_STREAMS"] as? Int == 10, "\(report)")
        #expect((report["max_concurrent"] as? Int ?? 99) <= 10)
        #expect((report["statuses"] as? [String: Any])?["200"] as? Int == 30, "\(report)")
    }

    @Test func streamsEchoTheirBodiesAndRefusedStreamsCarryRetryAfter() async throws {
        let h = try await GatewayHarness(yaml: HTTP2EndToEndTests.config(deploymentLimit: 4))
        let echo = try await Self.peer(
            ["streams", "--count", "4", "--method", "POST", "--body-bytes", "300000", "--path", "/echo", "--expect-echo"], port: h.port)
        #expect(echo["echo_ok"] as? Bool == true, "\(echo)")
        let mixed = try await Self.peer(["streams", "--count", "12", "--path", "/sleep?ms=500"], port: h.port)
        let statuses = mixed["statuses"] as? [String: Any] ?? [:]
        #expect(statuses["200"] as? Int == 4 && statuses["503"] as? Int == 8, "\(mixed)")
        #expect((mixed["retry_after"] as? [Any])?.count == 8, "\(mixed)")
    }

    @Test func oversizedHeaderListGets431OnItsStream() async throws {
        let h = try await GatewayHarness(yaml: HTTP2EndToEndTests.config(extra: "limits: {max_header_bytes: 4096}\n"))
        let big = String(repeating: "x", count: 8000)
        let run = try await ExternalTool.run(
            "curl", ["-sS", "--http2-prior-knowledge", "-H", "x-big: \(big)", "-o", "/dev/null", "-w", "%{http_code}",
                     "http://127.0.0.1:\(h.port)/"])
        #expect(run.stdout == ["431"], "\(run.output)")
    }

    /// Uploads the gateway answers itself (502: the only backend refuses connections) end
    /// without stalling the connection: the client is told to stop with RST_STREAM(NO_ERROR)
    /// once the answer is out, and any bytes already taken are consumed. 200 x 60 KB is many
    /// times the 1 MiB connection window that 16 streams give.
    @Test func uploadsThatNeverReachABackendStillReopenTheWindow() async throws {
        // 16 streams: a connection window of 1 MiB, which 200 x 60 KB overflows many times.
        let h = try await GatewayHarness(
            backends: 0, deadBackends: 1, yaml: HTTP2EndToEndTests.config(extra: "http2: {max_concurrent_streams: 16}\n"))
        let report = try await Self.peer(
            ["streams", "--count", "200", "--method", "POST", "--body-bytes", "60000", "--path", "/echo"], port: h.port, timeout: 30)
        #expect((report["statuses"] as? [String: Any])?["502"] as? Int == 200, "\(report)")
        #expect(report["timed_out"] as? Bool == false, "\(report)")
    }
}

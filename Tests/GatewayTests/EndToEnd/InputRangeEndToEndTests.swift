import Foundation
import NIOHTTP1
import Testing

/// Extreme numbers from an admin parameter or a configuration file, against a real gateway: they
/// are refused with a message that names the parameter or key, and the gateway keeps serving.
@Suite(.timeLimit(.minutes(2)))
struct InputRangeEndToEndTests {
    @Test func shutdownWithAnAbsurdTimeoutIs400AndTheGatewayKeepsServing() async throws {
        let h = try await GatewayHarness(yaml: GatewayHarness.simpleConfig())
        let answer = try await h.adminJSON(.POST, "/shutdown?timeout=1e300")
        #expect(answer.status == 400)
        #expect(answer.json["error"] as? String == "timeout must be a number of seconds from 0 to 31536000 (365 days), got '1e300'")
        #expect(try await h.get("/").status == .ok)
        #expect(try await h.admin(.GET, "/health").status == .ok)
        #expect(processIsAlive(h.gateway.pid))
    }

    @Test func maxConcurrentStreamsBeyondHTTP2IsRefusedByCheckConfigAndReload() async throws {
        let huge = "http2:\n  max_concurrent_streams: 5000000000\n"
        let (path, directory) = try CheckConfigCommandTests.write(GatewayHarness.simpleConfig(extra: huge)
            .replacingOccurrences(of: "{listen}", with: "127.0.0.1:8080")
            .replacingOccurrences(of: "{admin}", with: "127.0.0.1:9901")
            .replacingOccurrences(of: "{backends}", with: "[127.0.0.1:9001]"))
        defer { try? FileManager.default.removeItem(at: directory) }
        let check = try ChildProcess.gateway(["check-config", path])
        #expect(try await check.waitForExit() == 1)
        try await check.waitForOutputToEnd()
        #expect(
            check.stderrLines == ["\(path):6:27: http2.max_concurrent_streams: must be at most 2147483647 (2^31-1), got \"5000000000\""],
            "\(check.stderrLines)")

        // A reload refuses the same file by the key, and the running gateway goes on.
        let h = try await GatewayHarness(yaml: GatewayHarness.simpleConfig())
        try h.rewriteConfig(GatewayHarness.simpleConfig(extra: huge))
        let reload = try await h.adminJSON(.POST, "/reload")
        #expect(reload.status == 400)
        #expect((reload.json["error"] as? String ?? "").contains("http2.max_concurrent_streams: must be at most 2147483647"), "\(reload.json)")
        #expect(try await h.get("/").status == .ok)

        // A valid change of the HTTP/2 settings is reported, not "no changes".
        try h.rewriteConfig(GatewayHarness.simpleConfig(extra: "http2:\n  max_concurrent_streams: 64\n"))
        let valid = try await h.adminJSON(.POST, "/reload")
        #expect(valid.status == 200)
        #expect(valid.json["changes"] as? [String] == ["http2 settings updated for new connections"], "\(valid.json)")
    }
}

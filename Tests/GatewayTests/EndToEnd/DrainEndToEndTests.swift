import Foundation
import NIOHTTP1
import Synchronization
import Testing

/// Suspend, drain, resume and graceful shutdown, seen from clients and from the admin API.
@Suite(.timeLimit(.minutes(2)))
struct DrainEndToEndTests {
    @Test func suspendReturnsDrainedWhenTheLastSlowRequestCompletes() async throws {
        let h = try await GatewayHarness(yaml: GatewayHarness.simpleConfig())
        let lastCompletion = LastInstant()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for ms in [1500, 3000] {
                group.addTask {
                    let r = try await h.get("/sleep?ms=\(ms)")
                    #expect(r.status == .ok)
                    lastCompletion.record(.now)
                }
            }
            try await h.waitForActive(2)

            let suspend = Task { try await h.admin(.POST, "/suspend?timeout=5") }
            // While the drain runs, new requests are refused as draining, not as overload.
            try await h.waitForStats("the gateway to be suspending") { $0["state"] as? String == "SUSPENDING" }
            let refused = try await h.get("/")
            #expect(refused.status == .serviceUnavailable)
            #expect(refused.header("x-gateway-reject") == "suspended")
            #expect(refused.header("retry-after") != nil)
            #expect(refused.header("connection") == "close")
            let ready = try await h.admin(.GET, "/ready")
            #expect(ready.status == .serviceUnavailable)
            #expect(try await h.admin(.GET, "/health").status == .ok)

            let answer = try await suspend.value
            let returnedAt = ContinuousClock.now
            let (status, json) = (Int(answer.status.code), GatewayHarness.json(answer))
            #expect(status == 200)
            #expect(json["drained"] as? Bool == true)
            #expect(json["active"] as? Int == 0)
            #expect(json["state"] as? String == "SUSPENDED")
            try await group.waitForAll()
            // The drain was reported after the last request completed, and promptly (not on a
            // 5 s timeout or a polling tick of its own).
            let last = try #require(lastCompletion.value)
            #expect(returnedAt - last < .milliseconds(700))
        }
        #expect(try await h.get("/").status == .serviceUnavailable)

        let (status, json) = try await h.adminJSON(.POST, "/resume")
        #expect(status == 200)
        #expect(json["state"] as? String == "RUNNING")
        #expect(try await h.get("/").status == .ok)
        #expect(try await h.admin(.GET, "/ready").status == .ok)
    }

    @Test func suspendTimeoutReportsTheRequestsStillActive() async throws {
        let h = try await GatewayHarness(yaml: GatewayHarness.simpleConfig())
        let slow = Task { try await h.get("/sleep?ms=2500") }
        try await h.waitForActive(1)
        let (status, json) = try await h.adminJSON(.POST, "/suspend?timeout=0.3")
        #expect(status == 200)
        #expect(json["drained"] as? Bool == false)
        #expect(json["active"] as? Int == 1)
        // The request in flight still finishes.
        #expect(try await slow.value.status == .ok)
        _ = try await h.adminJSON(.POST, "/resume")
    }

    @Test func deploymentAndEntryPointScopes() async throws {
        let yaml = """
            listen: {listen}
            admin:
              listen: {admin}
            deployments:
              - name: shop
                path_prefix: /
                entry_points:
                  - name: api
                    path_prefix: /health
                  - name: default
                    path_prefix: /
                backends: [{backend0}]
            """
        let h = try await GatewayHarness(yaml: yaml)
        var (status, json) = try await h.adminJSON(.POST, "/suspend?timeout=1&deployment=shop&entry_point=api")
        #expect(status == 200)
        #expect(json["drained"] as? Bool == true)
        #expect(try await h.get("/health").status == .serviceUnavailable)
        #expect(try await h.get("/").status == .ok)
        (status, json) = try await h.adminJSON(.POST, "/resume?deployment=shop&entry_point=api")
        #expect(status == 200)
        #expect(try await h.get("/health").status == .ok)

        (status, _) = try await h.adminJSON(.POST, "/suspend?timeout=0&deployment=shop")
        #expect(status == 200)
        #expect(try await h.get("/").status == .serviceUnavailable)
        _ = try await h.adminJSON(.POST, "/resume?deployment=shop")
        #expect(try await h.get("/").status == .ok)
    }

    @Test func badAdminCallsGetClearErrors() async throws {
        let h = try await GatewayHarness(yaml: GatewayHarness.simpleConfig())
        var (status, json) = try await h.adminJSON(.POST, "/suspend?deployment=nope")
        #expect(status == 404)
        #expect((json["error"] as? String)?.contains("nope") == true)
        (status, json) = try await h.adminJSON(.POST, "/suspend?timeout=soon")
        #expect(status == 400)
        #expect((json["error"] as? String)?.contains("timeout") == true)
        (status, json) = try await h.adminJSON(.POST, "/suspend?entry_point=api")
        #expect(status == 400)
        (status, json) = try await h.adminJSON(.POST, "/resume?color=blue")
        #expect(status == 400)
        #expect((json["error"] as? String)?.contains("color") == true)
        (status, _) = try await h.adminJSON(.GET, "/suspend")
        #expect(status == 405)
        // Nothing of that changed the gateway.
        #expect(try await h.get("/").status == .ok)
    }

    @Test func idleKeepAliveConnectionsAreClosedWhenTheGatewayDrains() async throws {
        let h = try await GatewayHarness(yaml: GatewayHarness.simpleConfig())
        try await TestHTTPClient.withConnection(port: h.port) { client in
            #expect(try await client.request(.GET, "/").status == .ok)
            _ = try await h.adminJSON(.POST, "/suspend?timeout=1")
            #expect(await client.waitForServerClose(timeout: .seconds(5)))
        }
        _ = try await h.adminJSON(.POST, "/resume")
    }

    @Test func responsesInADrainingScopeCarryConnectionClose() async throws {
        let h = try await GatewayHarness(yaml: GatewayHarness.simpleConfig())
        // A keep-alive request in flight when the drain starts: its response says
        // Connection: close and the gateway closes the connection after it (the raw read ends at
        // the close, long before its 10 s bound).
        let port = h.port
        let started = ContinuousClock.now
        let slow = Task {
            try await TestHTTPClient.raw(port: port, "GET /sleep?ms=3000 HTTP/1.1\r\nHost: x\r\n\r\n", timeout: .seconds(15))
        }
        try await h.waitForActive(1)
        let suspend = Task { try await h.admin(.POST, "/suspend?timeout=5") }
        let answer = try await slow.value
        #expect(answer.hasPrefix("HTTP/1.1 200 OK"))
        #expect(answer.lowercased().contains("connection: close"))
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(GatewayHarness.json(try await suspend.value)["drained"] as? Bool == true)
    }

    @Test func sigtermDrainsInFlightRequestsThenExitsZero() async throws {
        let h = try await GatewayHarness(yaml: GatewayHarness.simpleConfig())
        let slow = Task { try await h.get("/sleep?ms=3000") }
        try await h.waitForActive(1)
        h.gateway.terminate(signal: SIGTERM)
        #expect(try await slow.value.status == .ok)
        #expect(try await h.gateway.waitForExit(timeout: .seconds(15)) == 0)
        #expect(h.gateway.stderrLines.contains { $0.contains("drained=true") })
    }

    @Test func invalidConfigIsRefusedWithAClearErrorAndNonZeroExit() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gateway-bad-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("bad.yaml").path
        try "listen: 127.0.0.1:1\ndeployments:\n  - name: shop\n    max_requests: lots\n    backends: [127.0.0.1:2]\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        let run = try ChildProcess.gateway(["run", "--config", path])
        let status = try await run.waitForExit(timeout: .seconds(10))
        try await run.waitForOutputToEnd()
        #expect(status != 0)
        #expect(run.stderrLines.joined(separator: "\n").contains("max_requests"))
    }
}

/// The latest of several instants recorded from concurrent tasks.
final class LastInstant: Sendable {
    private let latest = Mutex<ContinuousClock.Instant?>(nil)
    func record(_ instant: ContinuousClock.Instant) {
        latest.withLock { $0 = max($0 ?? instant, instant) }
    }
    var value: ContinuousClock.Instant? { latest.withLock { $0 } }
}

import Foundation
import NIOHTTP1
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The product's promise: a rolling restart under load fails no request, and no old instance
/// gets its stop signal while a request is in flight to it.
@Suite(.serialized) struct RollingRestartEndToEndTests {
    @Test func rollingRestartOfThreeInstancesUnderLoadFailsNothing() async throws {
        let harness = try await GatewayHarness(backends: 0, yaml: GatewayHarness.supervisedConfig(instances: 3))
        let before = try await harness.waitForReady(3)
        let oldPids = Set(before.compactMap { $0["pid"] as? Int })

        let load = MixedLoad(port: harness.port)
        let loadTask = Task { await load.run(workers: 12) }
        // Let the load reach every instance before the roll starts.
        try await harness.waitForProcesses("requests on every instance") { rows in
            rows.filter { ($0["total"] as? Int ?? 0) > 0 }.count == 3
        }
        let restart = try await harness.adminJSON(.POST, "/deployments/shop/restart")
        load.stop()
        await loadTask.value

        #expect(restart.status == 200, "\(restart.json)")
        #expect(restart.json["ok"] as? Bool == true)
        let steps = restart.json["steps"] as? [[String: Any]] ?? []
        #expect(steps.count == 3)
        for step in steps {
            // RequestControl's count of the instance reached zero before its stop signal.
            #expect(step["drained"] as? Bool == true, "\(step)")
            #expect(step["error"] is NSNull)
        }
        #expect(load.failures.isEmpty, "\(load.failures.prefix(10))")
        #expect(load.succeeded > 30)
        try await Self.expectNoRequestInFlightAtStop(harness, pids: oldPids)

        let after = try await harness.waitForReady(3)
        #expect(Set(after.compactMap { $0["pid"] as? Int }).isDisjoint(with: oldPids))
        #expect(after.allSatisfy { $0["restarts"] as? Int == 1 })
    }

    @Test func rollingRestartOfOneInstanceSurgesAndFailsNothing() async throws {
        let harness = try await GatewayHarness(backends: 0, yaml: GatewayHarness.supervisedConfig(instances: 1))
        let before = try await harness.waitForReady(1)
        let oldPid = before[0]["pid"] as! Int
        let oldPort = before[0]["port"] as! Int

        let load = MixedLoad(port: harness.port)
        let loadTask = Task { await load.run(workers: 8) }
        try await harness.waitForProcesses("requests on the instance") { ($0.first?["total"] as? Int ?? 0) > 3 }
        let restart = try await harness.adminJSON(.POST, "/deployments/shop/restart")
        load.stop()
        await loadTask.value

        #expect(restart.status == 200, "\(restart.json)")
        let step = (restart.json["steps"] as? [[String: Any]] ?? [[:]])[0]
        #expect(step["drained"] as? Bool == true)
        // The replacement joined the rotation before the old instance left it.
        #expect(step["out_of_rotation_ms"] as? Int == 0)
        #expect(step["old_port"] as? Int == oldPort)
        #expect(step["new_port"] as? Int != oldPort)
        #expect(load.failures.isEmpty, "\(load.failures.prefix(10))")
        try await Self.expectNoRequestInFlightAtStop(harness, pids: [oldPid])
        let after = try await harness.waitForReady(1)
        #expect(after[0]["pid"] as? Int != oldPid)
    }

    /// The roll onto a spec whose instance never gets ready stops, and the old instance goes on
    /// serving.
    @Test func aReplacementThatNeverGetsReadyLeavesTheOldInstanceServing() async throws {
        let harness = try await GatewayHarness(backends: 0, yaml: GatewayHarness.supervisedConfig(instances: 1))
        let before = try await harness.waitForReady(1)
        let oldPid = before[0]["pid"] as! Int
        // Reload onto a process that never answers its health check.
        let broken = GatewayHarness.supervisedConfig(instances: 1, command: "[\"sh\", \"-c\", \"exec sleep 1000\"]")
            .replacingOccurrences(of: "ready_timeout: 15s", with: "ready_timeout: 1s")
        try harness.rewriteConfig(broken)
        let reload = try await harness.adminJSON(.POST, "/reload")
        #expect(reload.status == 200)
        let changes = (reload.json["changes"] as? [String] ?? []).joined(separator: "\n")
        #expect(changes.contains("roll failed"), "\(changes)")
        #expect(changes.contains("did not get ready"), "\(changes)")
        let rows = try await harness.waitForReady(1)
        #expect(rows[0]["pid"] as? Int == oldPid)
        #expect(try await harness.get("/").status == .ok)
    }

    /// The demo backend prints how many requests it had in flight when SIGTERM arrived: the
    /// backend's own view of the drain, independent of the gateway's counters.
    private static func expectNoRequestInFlightAtStop(_ harness: GatewayHarness, pids: Set<Int>) async throws {
        // The restart answered after each old instance exited, and an exit is reported only
        // after the instance's last output was relayed; this process may still be reading it.
        func shutdownLines() -> [String] {
            harness.gateway.stdoutLines.filter { $0.contains("shutting down: stopped accepting") }
        }
        let deadline = ContinuousClock.now + .seconds(5)
        while shutdownLines().count < pids.count, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        let shutdowns = shutdownLines()
        #expect(shutdowns.count == pids.count, "\(shutdowns)")
        for line in shutdowns {
            #expect(line.hasSuffix(", 0 requests in flight"), "\(line)")
        }
    }
}

/// Reload: deployments added, removed and changed; an invalid file refused.
@Suite(.serialized) struct ReloadEndToEndTests {
    @Test func reloadAddsRemovesAndChangesDeployments() async throws {
        let ports = GatewayHarness.portRange()
        let original = """
            listen: {listen}
            admin:
              listen: {admin}
            shutdown_timeout: 5s
            deployments:
              - name: fixed
                hosts: [fixed.test]
                backends: [{backend0}]
              - name: shop
                path_prefix: /
                max_requests: 50
                process:
                  command: ["gateway", "demo-backend"]
                  ports: \(ports)
                  health: {http: /health, interval: 200ms}
            """
        let harness = try await GatewayHarness(backends: 1, yaml: original)
        let shopPid = try await harness.waitForReady(1)[0]["pid"] as! Int
        let fixedAnswer = try await harness.get("/", headers: [("Host", "fixed.test")])
        #expect(fixedAnswer.status == .ok)
        #expect(String(decoding: fixedAnswer.body, as: UTF8.self).contains("b0"))

        // 1. A limit only: updated in place, the instance keeps running.
        try harness.rewriteConfig(original.replacingOccurrences(of: "max_requests: 50", with: "max_requests: 7"))
        let reload = try await harness.adminJSON(.POST, "/reload")
        #expect(reload.status == 200, "\(reload.json)")
        #expect((reload.json["changes"] as? [String] ?? []).contains("deployment 'shop' updated in place"))
        let stats = try await harness.stats()
        let shop = (stats["deployments"] as? [[String: Any]] ?? []).first { $0["name"] as? String == "shop" } ?? [:]
        #expect(shop["limit"] as? Int == 7)
        #expect(try await harness.processes()[0]["pid"] as? Int == shopPid)

        // 2. Remove "fixed", add "extra" (supervised), change shop's process (env): rolled. By SIGHUP.
        let changed = """
            listen: {listen}
            admin:
              listen: {admin}
            shutdown_timeout: 5s
            deployments:
              - name: shop
                path_prefix: /
                max_requests: 7
                process:
                  command: ["gateway", "demo-backend"]
                  env: {GENERATION: "2"}
                  ports: \(ports)
                  health: {http: /health, interval: 200ms}
              - name: extra
                hosts: [extra.test]
                process:
                  command: ["gateway", "demo-backend"]
                  ports: \(GatewayHarness.portRange())
                  health: {http: /health, interval: 200ms}
            """
        try harness.rewriteConfig(changed)
        kill(harness.gateway.pid, SIGHUP)
        try await harness.gateway.waitForOutput(containing: "configuration reloaded", timeout: .seconds(30))
        let rows = try await harness.waitForProcesses("shop rolled and extra ready") { rows in
            rows.contains { $0["instance"] as? String == "extra#1" && $0["state"] as? String == "READY" }
                && rows.contains { $0["instance"] as? String == "shop#1" && $0["state"] as? String == "READY" && $0["pid"] as? Int != shopPid }
        }
        #expect(rows.count == 2)
        // fixed.test is now served by shop (any host), no longer by the fixed backend b0.
        let formerlyFixed = try await harness.get("/", headers: [("Host", "fixed.test")])
        #expect(formerlyFixed.status == .ok)
        #expect(String(decoding: formerlyFixed.body, as: UTF8.self).contains("shop#1"))
        let extra = try await harness.get("/", headers: [("Host", "extra.test")])
        #expect(extra.status == .ok)
        #expect(String(decoding: extra.body, as: UTF8.self).contains("extra#1"))
        let deployments = (try await harness.stats()["deployments"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        #expect(deployments == ["shop", "extra"])
        #expect(harness.gateway.stderrLines.contains { $0.contains("deployment 'fixed' removed") })
    }

    @Test func anInvalidReloadIsRefusedAndTheRunningConfigKeepsServing() async throws {
        let harness = try await GatewayHarness(backends: 1, yaml: GatewayHarness.simpleConfig())
        try harness.rewriteConfig(GatewayHarness.simpleConfig().replacingOccurrences(of: "path_prefix: /", with: "path_prefix: nope"))
        let reload = try await harness.adminJSON(.POST, "/reload")
        #expect(reload.status == 400)
        let error = reload.json["error"] as? String ?? ""
        #expect(error.contains("gateway.yaml"), "\(error)")
        #expect(error.contains("path prefix must start with"), "\(error)")
        #expect(try await harness.get("/").status == .ok)
        // SIGHUP with the same bad file: logged, not fatal.
        kill(harness.gateway.pid, SIGHUP)
        try await harness.gateway.waitForOutput(containing: "reload refused")
        #expect(try await harness.get("/").status == .ok)
        #expect(!harness.gateway.hasExited)
    }
}

extension GatewayHarness {
    /// Replaces the gateway's configuration file (placeholders substituted as at start), for a
    /// reload.
    func rewriteConfig(_ yaml: String) throws {
        var text = TestAdmin.withAdminUser(yaml)
            .replacingOccurrences(of: "{listen}", with: "127.0.0.1:0")
            .replacingOccurrences(of: "{admin}", with: "127.0.0.1:0")
            .replacingOccurrences(of: "{backends}", with: "[" + backendPorts.map { "127.0.0.1:\($0)" }.joined(separator: ", ") + "]")
        for (index, backendPort) in backendPorts.enumerated() {
            text = text.replacingOccurrences(of: "{backend\(index)}", with: "127.0.0.1:\(backendPort)")
        }
        try text.write(to: directory.appendingPathComponent("gateway.yaml"), atomically: true, encoding: .utf8)
    }
}

import Foundation
import NIOHTTP1
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Deployments whose processes the gateway runs: real gateway, real demo-backend and shell
/// children, real signals.
@Suite(.serialized) struct SupervisedEndToEndTests {
    @Test func instancesStartJoinTheRotationAndRelayTheirOutput() async throws {
        let harness = try await GatewayHarness(backends: 0, yaml: GatewayHarness.supervisedConfig(instances: 2))
        let rows = try await harness.waitForReady(2)
        #expect(Set(rows.compactMap { $0["instance"] as? String }) == ["shop#1", "shop#2"])
        for row in rows {
            #expect((row["pid"] as? Int ?? 0) > 0)
            #expect((row["rss_bytes"] as? Int ?? 0) > 0)
            #expect(row["restarts"] as? Int == 0)
        }
        // Both answer through the gateway; the demo backend names itself after $GATEWAY_INSTANCE.
        var seen: Set<String> = []
        for _ in 0..<20 where seen.count < 2 {
            let response = try await harness.get("/")
            #expect(response.status == .ok)
            let text = String(decoding: response.body, as: UTF8.self)
            if text.contains("shop#1") { seen.insert("shop#1") }
            if text.contains("shop#2") { seen.insert("shop#2") }
        }
        #expect(seen == ["shop#1", "shop#2"])
        // Their stdout is relayed, prefixed with the instance name.
        try await harness.gateway.waitForOutput(containing: "[shop#1] demo-backend shop#1 listening on", in: .stdout)
        try await harness.gateway.waitForOutput(containing: "[shop#2] demo-backend shop#2 listening on", in: .stdout)
        // /processes counts the requests each instance served.
        let after = try await harness.processes()
        #expect(after.reduce(0) { $0 + ($1["total"] as? Int ?? 0) } >= 2)
    }

    @Test func portAndInstanceNameAreExpandedInTheCommandAndCwd() async throws {
        // The directory an instance is started in, named after it.
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("expansion-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: base.appendingPathComponent("run-shop#1"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: base) }
        let yaml = GatewayHarness.supervisedConfig(
            instances: 1, extraProcess: "      cwd: \(base.path)/run-${GATEWAY_INSTANCE}\n",
            command: "[\"gateway\", \"demo-backend\", \"--port\", \"$PORT\", \"--name\", \"as-$GATEWAY_INSTANCE\"]")
        let harness = try await GatewayHarness(backends: 0, yaml: yaml)
        let row = try #require(try await harness.waitForReady(1).first)
        let response = try await harness.get("/")
        #expect(response.status == .ok)
        #expect(String(decoding: response.body, as: UTF8.self).contains("as-shop#1"))
        let pid = try #require(row["pid"] as? Int)
        let cwd = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/cwd")
        #expect(cwd == base.appendingPathComponent("run-shop#1").path)
    }

    @Test func aCrashedInstanceIsRespawnedAfterTheConfiguredDelay() async throws {
        let yaml = GatewayHarness.supervisedConfig(instances: 1)
            .replacingOccurrences(of: "delays: [200ms, 400ms]", with: "delays: [1s]")
        let harness = try await GatewayHarness(backends: 0, yaml: yaml)
        let before = try await harness.waitForReady(1)
        let oldPid = Int32(before[0]["pid"] as! Int)
        let killed = ContinuousClock.now
        kill(oldPid, SIGKILL)
        try await harness.gateway.waitForOutput(containing: "[shop#1] exited with signal 9 (KILL)")
        let rows = try await harness.waitForProcesses("a new pid for shop#1") { rows in
            rows.contains { $0["state"] as? String == "READY" && ($0["pid"] as? Int).map(Int32.init) != oldPid }
        }
        let elapsed = ContinuousClock.now - killed
        // The delay is 1 s; starting and the first health check add a little. Not before 1 s.
        #expect(elapsed >= .seconds(1))
        #expect(elapsed < .seconds(5))
        #expect(rows[0]["restarts"] as? Int == 1)
        #expect((rows[0]["last_exit"] as? String ?? "").contains("signal 9 (KILL)"))
        #expect(try await harness.get("/").status == .ok)
    }

    @Test func aCrashLoopEndsInFailedWithoutSpinning() async throws {
        let yaml = GatewayHarness.supervisedConfig(instances: 1, command: "[\"sh\", \"-c\", \"echo booting; exit 3\"]")
            .replacingOccurrences(of: "respawn: {delays: [200ms, 400ms], reset_after: 60s}", with: "respawn: {delays: [100ms, 200ms], reset_after: 60s, max_restarts: 3}")
        let started = ContinuousClock.now
        let harness = try await GatewayHarness(backends: 0, yaml: yaml)
        let rows = try await harness.waitForProcesses("shop#1 FAILED") { $0.first?["state"] as? String == "FAILED" }
        let elapsed = ContinuousClock.now - started
        #expect(rows[0]["restarts"] as? Int == 3)
        #expect((rows[0]["reason"] as? String ?? "").contains("max_restarts"))
        #expect((rows[0]["last_exit"] as? String ?? "").contains("exit status 3"))
        // 1 start + 3 restarts, with 100 + 200 + 200 ms of backoff between them: never a spin.
        #expect(elapsed >= .milliseconds(500))
        let exits = harness.gateway.stderrLines.filter { $0.contains("[shop#1] exited with exit status 3") }.count
        #expect(exits == 4)
        // It stays FAILED: nothing is started again (the state is read again after a while of backoff length).
        try await Task.sleep(for: .milliseconds(600))
        #expect(harness.gateway.stderrLines.filter { $0.contains("[shop#1] exited with exit status 3") }.count == 4)
        #expect(harness.gateway.stdoutLines.filter { $0 == "[shop#1] booting" }.count == 4)
        // The deployment has no backend in rotation: a fast 503.
        #expect(try await harness.get("/").status == .serviceUnavailable)
        // An operator start is refused with the reason when the instance cannot get ready.
        let start = try await harness.adminJSON(.POST, "/deployments/shop/instances/1/start")
        #expect(start.status == 500)
    }

    @Test func aHungInstanceIsKilledAndRestarted() async throws {
        let harness = try await GatewayHarness(backends: 0, yaml: GatewayHarness.supervisedConfig(instances: 1))
        let before = try await harness.waitForReady(1)
        let oldPid = Int32(before[0]["pid"] as! Int)
        // SIGSTOP: the process exists but answers nothing, like a hung server.
        kill(oldPid, SIGSTOP)
        try await harness.gateway.waitForOutput(containing: "[shop#1] health check failed 2 times in a row", timeout: .seconds(15))
        try await harness.gateway.waitForOutput(containing: "[shop#1] exited with signal 9 (KILL)", timeout: .seconds(15))
        let rows = try await harness.waitForProcesses("shop#1 restarted") { rows in
            rows.contains { $0["state"] as? String == "READY" && ($0["pid"] as? Int).map(Int32.init) != oldPid }
        }
        #expect((rows[0]["last_exit"] as? String ?? "").contains("signal 9 (KILL)"))
        #expect(await waitUntilGone([oldPid]).isEmpty)
        #expect(try await harness.get("/").status == .ok)
    }

    /// A child that ignores SIGTERM, with a grandchild that ignores it too: the stop escalates to
    /// SIGKILL of the whole group after `stop_timeout`.
    @Test func stopEscalatesToKillForTheWholeGroup() async throws {
        let script = "trap '' TERM; sleep 1000 & echo grandchild $!; exec python3 -m http.server --bind 127.0.0.1 $PORT"
        let yaml = GatewayHarness.supervisedConfig(instances: 1, command: "[\"sh\", \"-c\", \"\(script)\"]")
            .replacingOccurrences(of: "stop_timeout: 5s", with: "stop_timeout: 1s")
            .replacingOccurrences(of: "health: {http: /health,", with: "health: {tcp: true,")
        let harness = try await GatewayHarness(backends: 0, yaml: yaml)
        let rows = try await harness.waitForReady(1)
        let pid = Int32(rows[0]["pid"] as! Int)
        let line = try await harness.gateway.waitForOutput(containing: "[shop#1] grandchild ", in: .stdout)
        let grandchild = Int32(line.split(separator: " ").last!)!
        #expect(processIsAlive(grandchild))

        let started = ContinuousClock.now
        let stop = try await harness.adminJSON(.POST, "/deployments/shop/instances/1/stop")
        #expect(stop.status == 200)
        #expect(ContinuousClock.now - started >= .seconds(1))
        try await harness.gateway.waitForOutput(containing: "[shop#1] did not exit within 1 s; sending KILL to its process group")
        try await harness.gateway.waitForOutput(containing: "[shop#1] exited with signal 9 (KILL)")
        #expect(await waitUntilGone([pid, grandchild]).isEmpty)
        let after = try await harness.processes()
        #expect(after[0]["state"] as? String == "STOPPED")
        #expect(after[0]["pid"] is NSNull)
    }

    @Test func nothingIsLeftAfterTheGatewayExits() async throws {
        let script = "sleep 1000 & echo grandchild $!; exec python3 -m http.server --bind 127.0.0.1 $PORT"
        let yaml = GatewayHarness.supervisedConfig(instances: 2, command: "[\"sh\", \"-c\", \"\(script)\"]")
            .replacingOccurrences(of: "health: {http: /health,", with: "health: {tcp: true,")
        let harness = try await GatewayHarness(backends: 0, yaml: yaml)
        let pids = try await harness.waitForReady(2).map { Int32($0["pid"] as! Int) }
        let grandchildren = try await Self.grandchildren(harness, count: 2)
        harness.gateway.terminate(signal: SIGTERM)
        #expect(try await harness.gateway.waitForExit(timeout: .seconds(20)) == 0)
        #expect(await waitUntilGone(pids + grandchildren).isEmpty)
    }

    @Test func nothingIsLeftAfterTheGatewayIsKilled() async throws {
        let script = "sleep 1000 & echo grandchild $!; exec python3 -m http.server --bind 127.0.0.1 $PORT"
        let yaml = GatewayHarness.supervisedConfig(instances: 2, command: "[\"sh\", \"-c\", \"\(script)\"]")
            .replacingOccurrences(of: "health: {http: /health,", with: "health: {tcp: true,")
        let harness = try await GatewayHarness(backends: 0, yaml: yaml)
        let pids = try await harness.waitForReady(2).map { Int32($0["pid"] as! Int) }
        let grandchildren = try await Self.grandchildren(harness, count: 2)
        // SIGKILL: the gateway cannot clean up; PR_SET_PDEATHSIG kills the instances, and the
        // process-group watchdog kills the grandchildren.
        kill(harness.gateway.pid, SIGKILL)
        _ = try await harness.gateway.waitForExit(timeout: .seconds(10))
        #expect(await waitUntilGone(pids + grandchildren).isEmpty)
    }

    private static func grandchildren(_ harness: GatewayHarness, count: Int) async throws -> [Int32] {
        try await harness.gateway.waitForOutput(containing: "[shop#2] grandchild ", in: .stdout)
        try await harness.gateway.waitForOutput(containing: "[shop#1] grandchild ", in: .stdout)
        let pids = harness.gateway.stdoutLines.filter { $0.contains("] grandchild ") }.compactMap { Int32($0.split(separator: " ").last!) }
        // More than one per instance if an instance was respawned before it got ready (its port
        // taken by a parallel test, say); every one of them must be gone in the end.
        #expect(pids.count >= count)
        return pids
    }

    /// Two instances print long lines as fast as they can at the same time: every line reaches
    /// the gateway's stdout whole and with its own prefix.
    @Test func outputOfTwoInstancesIsNeverInterleaved() async throws {
        let line = String(repeating: "abcdefghij", count: 30)
        let script = "i=0; while [ $i -lt 2000 ]; do echo \\\"$GATEWAY_INSTANCE-$i-\(line)\\\"; i=$((i+1)); done; printf tail-without-newline; exec sleep 1000"
        let yaml = GatewayHarness.supervisedConfig(instances: 2, command: "[\"sh\", \"-c\", \"\(script)\"]")
            .replacingOccurrences(of: "health: {http: /health,", with: "health: {tcp: true,")
            .replacingOccurrences(of: "ready_timeout: 15s", with: "ready_timeout: 60s")
        let harness = try await GatewayHarness(backends: 0, yaml: yaml)
        try await harness.gateway.waitForOutput(containing: "[shop#1] shop#1-1999-", in: .stdout, timeout: .seconds(30))
        try await harness.gateway.waitForOutput(containing: "[shop#2] shop#2-1999-", in: .stdout, timeout: .seconds(30))
        let lines = harness.gateway.stdoutLines.filter { $0.contains(line.prefix(20)) }
        #expect(lines.count == 4000)
        for name in ["shop#1", "shop#2"] {
            let prefix = "[\(name)] \(name)-"
            let indices = lines.compactMap { text -> Int? in
                guard text.hasPrefix(prefix), text.hasSuffix("-" + line) else { return nil }
                return Int(text.dropFirst(prefix.count).dropLast(line.count + 1))
            }
            #expect(Set(indices) == Set(0..<2000))
        }
        // The partial last line is flushed when the process ends (here: when it is stopped).
        _ = try await harness.adminJSON(.POST, "/deployments/shop/stop")
        try await harness.gateway.waitForOutput(containing: "[shop#1] tail-without-newline", in: .stdout)
    }
}

/// The CLI as an operator uses it against a real gateway with real instances.
@Suite(.serialized) struct SupervisedCLIEndToEndTests {
    func cli(_ harness: GatewayHarness, _ arguments: [String]) async throws -> (status: Int32, output: [String]) {
        let child = try ChildProcess.gateway(arguments + ["--admin", "http://127.0.0.1:\(harness.adminPort)"])
        let status = try await child.waitForExit(timeout: .seconds(60))
        try await child.waitForOutputToEnd()
        return (status, child.stdoutLines + child.stderrLines)
    }

    @Test func statusRestartAndShutdownThroughTheCLI() async throws {
        let harness = try await GatewayHarness(backends: 0, yaml: GatewayHarness.supervisedConfig(instances: 2))
        let before = try await harness.waitForReady(2)
        let status = try await cli(harness, ["status"])
        #expect(status.status == 0)
        // The keeper's and the worker's lines, then the instances' table.
        #expect(status.output.first == "keeper    pid \(harness.gateway.pid)", "\(status.output)")
        #expect(status.output.dropFirst().first?.hasPrefix("worker    pid ") == true, "\(status.output)")
        #expect(status.output.dropFirst().first?.contains("generation 1  RUNNING, version ") == true, "\(status.output)")
        #expect(status.output.contains { $0.hasPrefix("NAME") })
        for row in before {
            let name = row["instance"] as! String
            let pid = row["pid"] as! Int
            #expect(status.output.contains { $0.hasPrefix(name) && $0.contains(" \(pid) ") && $0.contains("READY") }, "\(status.output)")
        }
        let restart = try await cli(harness, ["restart", "shop"])
        #expect(restart.status == 0, "\(restart.output)")
        #expect(restart.output.contains { $0.contains("rolled 2 instances") }, "\(restart.output)")
        let unknown = try await cli(harness, ["restart", "nosuch"])
        #expect(unknown.status == 1)
        #expect(unknown.output.contains { $0.contains("no deployment 'nosuch'") }, "\(unknown.output)")

        let pids = try await harness.waitForReady(2).map { Int32($0["pid"] as! Int) }
        let shutdown = try await cli(harness, ["shutdown", "--timeout", "5"])
        #expect(shutdown.status == 0)
        #expect(try await harness.gateway.waitForExit(timeout: .seconds(30)) == 0)
        #expect(await waitUntilGone(pids).isEmpty)
    }
}

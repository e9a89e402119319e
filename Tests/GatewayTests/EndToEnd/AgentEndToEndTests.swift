import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `gateway agent` beside demo backends the gateways do not supervise, two gateways on 127.0.0.2
/// and 127.0.0.3 standing for two hosts, one real etcd started by the test.
@Suite(.serialized) struct AgentEndToEndTests {
    /// Starts an agent that runs a demo backend named `name` on a free port.
    static func agent(_ etcd: EtcdServer, name: String, ttl: Int = 5) throws -> (process: ChildProcess, port: Int) {
        let port = try freePort()
        let process = try ChildProcess.gateway([
            "agent", "--etcd", etcd.endpoint, "--prefix", "/t/", "--deployment", "web", "--address", "127.0.0.1:\(port)",
            "--health", "/health", "--ttl", "\(ttl)", "--check-interval", "0.2",
            "--", GatewayBinary.path, "demo-backend", "--port", "\(port)", "--name", name,
        ])
        return (process, port)
    }

    static func gateways(_ etcd: EtcdServer) async throws -> [GatewayHarness] {
        let yaml = MembershipEndToEndTests.config(etcd: etcd.endpoint)
        return [
            try await GatewayHarness(backends: 0, yaml: yaml, host: "127.0.0.2"),
            try await GatewayHarness(backends: 0, yaml: yaml, host: "127.0.0.3"),
        ]
    }

    @Test func aDrainUnderLoadFailsNothingAtEitherGatewayAndTheAppStopsLast() async throws {
        let etcd = try await EtcdServer.start(members: 3)
        defer { etcd.stop() }
        let gateways = try await Self.gateways(etcd)
        let (a1, p1) = try Self.agent(etcd, name: "a1")
        let (a2, _) = try Self.agent(etcd, name: "a2")
        _ = try await a1.waitForOutput(containing: "state=serving", timeout: .seconds(15))
        _ = try await a2.waitForOutput(containing: "state=serving", timeout: .seconds(15))
        for gateway in gateways {
            let routed = try await MembershipEndToEndTests.waitForAnswers(gateway, ["a1", "a2"], timeout: .seconds(5))
            #expect(routed < .seconds(1), "\(gateway.host) took \(routed) to route to both agents' backends")
        }

        let loads = gateways.map { MixedLoad(port: $0.port, host: $0.host) }
        let running = loads.map { load in Task { await load.run(workers: 4, limit: .seconds(60)) } }
        // Load on both before the drain starts.
        let started = ContinuousClock.now
        while loads.contains(where: { $0.succeeded < 20 }), ContinuousClock.now - started < .seconds(20) {
            try await Task.sleep(for: .milliseconds(20))
        }
        let drain = try ChildProcess.gateway([
            "agent", "drain", "--etcd", etcd.endpoint, "--prefix", "/t/", "--deployment", "web", "--address", "127.0.0.1:\(p1)",
        ])
        #expect(try await drain.waitForExit(timeout: .seconds(60)) == 0, "\(drain.outputDescription)")
        #expect(try await a1.waitForExit(timeout: .seconds(30)) == 0)
        // Still under load after a1 is gone.
        let after = loads.map(\.succeeded)
        while zip(loads, after).contains(where: { $0.succeeded < $1 + 10 }), ContinuousClock.now - started < .seconds(40) {
            try await Task.sleep(for: .milliseconds(20))
        }
        loads.forEach { $0.stop() }
        for task in running { await task.value }

        for (gateway, load) in zip(gateways, loads) {
            #expect(load.failures.isEmpty, "\(gateway.host): \(load.failures.prefix(5)) of \(load.failures.count) failed, \(load.succeeded) ok")
            #expect(try await MembershipEndToEndTests.answers(gateway) == Array(repeating: "a2", count: 6))
        }
        // The order the agent promises: every gateway let go, then the key went, then the app
        // was told to stop, and it had nothing left in flight when it was.
        let lines = a1.stderrLines + a1.stdoutLines
        let letGo = try #require(lines.firstIndex { $0.contains("every gateway let go") }, "\(a1.outputDescription)")
        let deregistered = try #require(lines.firstIndex { $0.contains("agent: deregistered") })
        let stopped = try #require(lines.firstIndex { $0.contains("the app stopped") })
        #expect(letGo < deregistered && deregistered < stopped)
        let shutdown = try #require(a1.stdoutLines.first { $0.contains("shutting down") }, "\(a1.outputDescription)")
        #expect(shutdown.contains(" 0 requests in flight"), "\(shutdown)")
        a2.terminate()
        #expect(try await a2.waitForExit(timeout: .seconds(30)) == 0)
    }

    @Test func statusFleetListsEveryGatewayAndRegisteredBackend() async throws {
        let etcd = try await EtcdServer.start()
        defer { etcd.stop() }
        let gateways = try await Self.gateways(etcd)
        let (a1, p1) = try Self.agent(etcd, name: "a1")
        _ = try await a1.waitForOutput(containing: "state=serving", timeout: .seconds(15))
        for gateway in gateways { _ = try await MembershipEndToEndTests.waitForAnswers(gateway, ["a1"]) }
        try await etcd.put(MembershipEndToEndTests.key(1), "nonsense")

        // The reports follow the routing within a report interval; poll the table until both
        // gateways route to a1 (bounded).
        let admin = "http://\(gateways[0].host):\(gateways[0].adminPort)"
        var lines: [String] = []
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline {
            let status = try ChildProcess.gateway(["status", "--fleet", "--admin", admin], environment: ["GATEWAY_TOKEN": TestAdmin.token])
            #expect(try await status.waitForExit(timeout: .seconds(20)) == 0, "\(status.outputDescription)")
            try await status.waitForOutputToEnd()
            lines = status.stdoutLines
            if lines.contains(where: { $0.hasPrefix("web") && $0.contains("127.0.0.1:\(p1)") && $0.contains(", ") }) { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let row = try #require(lines.first { $0.hasPrefix("web") && $0.contains("127.0.0.1:\(p1)") }, "\(lines)")
        #expect(row.contains("serving"))
        for gateway in gateways { #expect(row.contains("\(gateway.host):\(gateway.port)"), "\(row)") }
        #expect(lines.contains { $0.contains("(this)") && $0.contains("\(gateways[0].host):\(gateways[0].port)") }, "\(lines)")
        #expect(lines.contains { $0.hasPrefix("ignored:") && $0.contains("unknown state") }, "\(lines)")

        // Without membership: a clear 404.
        let plain = try await GatewayHarness(backends: 1, yaml: GatewayHarness.simpleConfig())
        let status = try ChildProcess.gateway(
            ["status", "--fleet", "--admin", "http://127.0.0.1:\(plain.adminPort)"], environment: ["GATEWAY_TOKEN": TestAdmin.token])
        #expect(try await status.waitForExit(timeout: .seconds(20)) != 0)
        try await status.waitForOutputToEnd()
        #expect(status.outputDescription.contains("no `membership`"), "\(status.outputDescription)")
    }

    @Test func failingHealthChecksDrainTheBackendUntilTheyPassAgain() async throws {
        let etcd = try await EtcdServer.start()
        defer { etcd.stop() }
        let gateways = try await Self.gateways(etcd)
        let port = try freePort()
        var app = try ChildProcess.gateway(["demo-backend", "--port", "\(port)", "--name", "solo"])
        _ = try await app.waitForOutput(containing: "listening on", timeout: .seconds(20))
        // No command: the agent only registers and checks an app it does not run.
        let agent = try ChildProcess.gateway([
            "agent", "--etcd", etcd.endpoint, "--prefix", "/t/", "--deployment", "web", "--address", "127.0.0.1:\(port)",
            "--health", "/health", "--check-interval", "0.2", "--failures", "2",
        ])
        _ = try await agent.waitForOutput(containing: "state=serving", timeout: .seconds(15))
        for gateway in gateways { _ = try await MembershipEndToEndTests.waitForAnswers(gateway, ["solo"]) }

        app.killAndReap()
        _ = try await agent.waitForOutput(containing: "health checks failing; draining", timeout: .seconds(10))
        for gateway in gateways {
            _ = try await gateway.gateway.waitForOutput(containing: "state=draining", timeout: .seconds(10))
        }

        app = try ChildProcess.gateway(["demo-backend", "--port", "\(port)", "--name", "solo"])
        _ = try await app.waitForOutput(containing: "listening on", timeout: .seconds(20))
        for gateway in gateways { _ = try await MembershipEndToEndTests.waitForAnswers(gateway, ["solo"], timeout: .seconds(10)) }
        #expect(agent.stderrLines.filter { $0.contains("state=serving") }.count == 2, "\(agent.outputDescription)")
        agent.terminate()
        #expect(try await agent.waitForExit(timeout: .seconds(30)) == 0)
    }

    @Test func aKilledAgentLeavesEveryRotationAfterItsLease() async throws {
        let etcd = try await EtcdServer.start(members: 3)
        defer { etcd.stop() }
        let gateways = try await Self.gateways(etcd)
        let (a1, p1) = try Self.agent(etcd, name: "a1", ttl: 2)
        _ = try await a1.waitForOutput(containing: "state=serving", timeout: .seconds(15))
        for gateway in gateways { _ = try await MembershipEndToEndTests.waitForAnswers(gateway, ["a1"]) }

        let killed = ContinuousClock.now
        kill(a1.pid, SIGKILL)
        for gateway in gateways {
            _ = try await gateway.gateway.waitForOutput(containing: "registered backend left", timeout: .seconds(10))
            #expect(gateway.gateway.stderrLines.contains { $0.contains("registered backend left") && $0.contains("127.0.0.1:\(p1)") })
        }
        let gone = ContinuousClock.now - killed
        // The lease's TTL, give or take etcd's lease checking (every 500 ms) and the watch.
        #expect(gone >= .seconds(1) && gone < .seconds(5), "left \(gone) after the kill")
    }

    @Test func anAppThatDiesIsDeregisteredAndTheAgentFails() async throws {
        let etcd = try await EtcdServer.start()
        defer { etcd.stop() }
        let gateways = try await Self.gateways(etcd)
        let (a1, _) = try Self.agent(etcd, name: "a1")
        let line = try await a1.waitForOutput(containing: "agent started the app", timeout: .seconds(15))
        _ = try await a1.waitForOutput(containing: "state=serving", timeout: .seconds(15))
        _ = try await MembershipEndToEndTests.waitForAnswers(gateways[0], ["a1"])
        let pid = try #require(line.split(separator: " ").first { $0.hasPrefix("pid=") }.flatMap { Int32($0.dropFirst(4)) })
        kill(pid, SIGKILL)
        #expect(try await a1.waitForExit(timeout: .seconds(15)) == 1)
        for gateway in gateways { _ = try await MembershipEndToEndTests.waitForAnswers(gateway, ["503"]) }
    }
}

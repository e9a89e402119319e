import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `gateway restart D --fleet` across gateways on 127.0.0.2, .3 and .4 (standing for hosts), one
/// real etcd started by the test.
@Suite(.serialized) struct FleetRollEndToEndTests {
    /// This roll's statuses as etcd has them now: gateway → state.
    static func statuses(_ etcd: EtcdServer) async throws -> [String: String] {
        let result = try await ExternalTool.run("etcdctl", ["--endpoints", etcd.liveEndpoint, "get", "--prefix", "/t/rolls/shop/status/", "--print-value-only"])
        var states: [String: String] = [:]
        for line in result.stdout where line.hasPrefix("{") {
            let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] ?? [:]
            if let gateway = object["gateway"] as? String, let state = object["state"] as? String { states[gateway] = state }
        }
        return states
    }

    static func fleetRestart(_ via: GatewayHarness) throws -> ChildProcess {
        try ChildProcess.gateway(
            ["restart", "shop", "--fleet", "--timeout", "120", "--admin", "http://\(via.host):\(via.adminPort)"],
            environment: ["GATEWAY_TOKEN": TestAdmin.token])
    }

    @Test func aFleetRollUnderLoadFailsNothingAndNeverRollsTwoHostsAtOnce() async throws {
        let etcd = try await EtcdServer.start(members: 3)
        defer { etcd.stop() }
        let gateways = [
            try await GatewayHarness(backends: 0, yaml: GatewayHarness.etcdSupervisedConfig(etcd), host: "127.0.0.2"),
            try await GatewayHarness(backends: 0, yaml: GatewayHarness.etcdSupervisedConfig(etcd), host: "127.0.0.3"),
        ]
        for gateway in gateways { try await gateway.waitForReady(2) }
        let pidsBefore = try await gateways.asyncMap { Set(try await $0.waitForReady(2).compactMap { $0["pid"] as? Int }) }

        let loads = gateways.map { MixedLoad(port: $0.port, host: $0.host) }
        let running = loads.map { load in Task { await load.run(workers: 4, limit: .seconds(120)) } }
        let started = ContinuousClock.now
        while loads.contains(where: { $0.succeeded < 20 }), ContinuousClock.now - started < .seconds(20) {
            try await Task.sleep(for: .milliseconds(20))
        }
        let cli = try Self.fleetRestart(gateways[0])
        // Sample who rolls while the roll goes on: never both.
        var rollingTogether: [[String: String]] = []
        var sawRolling = Set<String>()
        while (try? await cli.waitForExit(timeout: .milliseconds(1))) == nil, ContinuousClock.now - started < .seconds(120) {
            let states = try await Self.statuses(etcd)
            let rolling = states.filter { $0.value == "rolling" }
            sawRolling.formUnion(rolling.keys)
            if rolling.count > 1 { rollingTogether.append(states) }
        }
        #expect(try await cli.waitForExit(timeout: .seconds(120)) == 0, "\(cli.outputDescription)")
        loads.forEach { $0.stop() }
        for task in running { await task.value }

        #expect(rollingTogether.isEmpty, "both hosts rolled at once: \(rollingTogether.prefix(3))")
        #expect(sawRolling.count == 2, "saw rolling: \(sawRolling)")
        #expect(cli.stdoutLines.contains { $0.contains("fleet roll of shop done on 2 gateway(s), at most 1 at once") }, "\(cli.outputDescription)")
        for (gateway, load) in zip(gateways, loads) {
            #expect(load.failures.isEmpty, "\(gateway.host): \(load.failures.prefix(5)) of \(load.failures.count) failed, \(load.succeeded) ok")
        }
        // Every instance on both hosts is new.
        for (gateway, before) in zip(gateways, pidsBefore) {
            let after = Set(try await gateway.waitForReady(2).compactMap { $0["pid"] as? Int })
            #expect(after.isDisjoint(with: before), "\(gateway.host): \(before) -> \(after)")
        }
    }

    @Test func aGatewayKilledMidRollLosesItsSlotAndTheRollCompletes() async throws {
        let etcd = try await EtcdServer.start(members: 3)
        defer { etcd.stop() }
        let rolling = [
            try await GatewayHarness(backends: 0, yaml: GatewayHarness.etcdSupervisedConfig(etcd, instances: 3), host: "127.0.0.2"),
            try await GatewayHarness(backends: 0, yaml: GatewayHarness.etcdSupervisedConfig(etcd, instances: 3), host: "127.0.0.3"),
        ]
        // The one asked runs no instances of shop: it only waits for the others.
        let asked = try await GatewayHarness(backends: 1, yaml: """
            listen: {listen}
            admin: {listen: {admin}}
            membership:
              etcd: {endpoints: [\(etcd.endpoint)], prefix: /t/}
            deployments:
              - name: shop
                backends: [{backend0}]
            """, host: "127.0.0.4")
        for gateway in rolling { try await gateway.waitForReady(3) }
        let cli = try Self.fleetRestart(asked)

        // Kill whichever host rolls first, mid-roll.
        var victim: GatewayHarness?
        let deadline = ContinuousClock.now + .seconds(30)
        while victim == nil, ContinuousClock.now < deadline {
            let states = try await Self.statuses(etcd)
            // A gateway's id ends with the address it listens on.
            victim = rolling.first { gateway in states.contains { $0.key.hasSuffix("-\(gateway.host):\(gateway.port)") && $0.value == "rolling" } }
        }
        let killed = try #require(victim, "no host started rolling")
        kill(killed.gateway.pid, SIGKILL)

        #expect(try await cli.waitForExit(timeout: .seconds(90)) == 0, "\(cli.outputDescription)")
        let output = cli.stdoutLines.joined(separator: "\n")
        #expect(output.contains("lost mid-roll: ") && output.contains("\(killed.host):\(killed.port)"), "\(output)")
        let survivor = rolling.first { $0.host != killed.host }!
        #expect(survivor.gateway.stderrLines.contains { $0.contains("fleet roll: this gateway's part ended") && $0.contains("state=done") })
        #expect(output.contains("skipped"), "\(output)")
    }
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var result: [T] = []
        for element in self { result.append(try await transform(element)) }
        return result
    }
}

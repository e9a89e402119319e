import Foundation
import Testing

/// `publish: true`: one gateway's supervised instances registered in a real etcd, routed to by
/// another gateway (127.0.0.2 and 127.0.0.3 stand for two hosts), and rolled with neither
/// gateway failing a request.
@Suite(.serialized) struct PublishEndToEndTests {
    @Test func aRollOfPublishedInstancesFailsNothingAtEitherGateway() async throws {
        let etcd = try await EtcdServer.start()
        defer { etcd.stop() }
        let owner = try await GatewayHarness(backends: 0, yaml: GatewayHarness.etcdSupervisedConfig(etcd, publish: true), host: "127.0.0.2")
        let other = try await GatewayHarness(backends: 0, yaml: """
            listen: {listen}
            admin: {listen: {admin}}
            membership:
              etcd: {endpoints: [\(etcd.endpoint)], prefix: /t/}
            deployments:
              - name: shop
                backends: []
            """, host: "127.0.0.3")
        let ready = try await owner.waitForReady(2)
        let names = Set(ready.compactMap { $0["instance"] as? String })
        #expect(names.count == 2, "\(ready)")
        _ = try await MembershipEndToEndTests.waitForAnswers(other, names, timeout: .seconds(10))

        let loads = [owner, other].map { MixedLoad(port: $0.port, host: $0.host) }
        let running = loads.map { load in Task { await load.run(workers: 4, limit: .seconds(90)) } }
        let started = ContinuousClock.now
        while loads.contains(where: { $0.succeeded < 20 }), ContinuousClock.now - started < .seconds(20) {
            try await Task.sleep(for: .milliseconds(20))
        }
        let restart = try await owner.adminJSON(.POST, "/deployments/shop/restart")
        #expect(restart.status == 200, "\(restart.json)")
        let after = loads.map(\.succeeded)
        while zip(loads, after).contains(where: { $0.succeeded < $1 + 10 }), ContinuousClock.now - started < .seconds(60) {
            try await Task.sleep(for: .milliseconds(20))
        }
        loads.forEach { $0.stop() }
        for task in running { await task.value }
        for (gateway, load) in zip([owner, other], loads) {
            #expect(load.failures.isEmpty, "\(gateway.host): \(load.failures.prefix(5)) of \(load.failures.count) failed, \(load.succeeded) ok")
        }
        // Each old instance was released by the other gateway before this one drained it.
        let released = owner.gateway.stderrLines.filter { $0.contains("published instance released by every other gateway") }
        #expect(released.count == 2, "\(owner.gateway.stderrLines.suffix(30))")
        // And the other gateway let go of both old instances and routes to the new ones.
        #expect(other.gateway.stderrLines.filter { $0.contains("registered backend left") }.count == 2, "\(other.gateway.stderrLines.suffix(30))")
        _ = try await MembershipEndToEndTests.waitForAnswers(other, names, timeout: .seconds(10))
    }
}

@Suite(.serialized) struct FleetUpgradeEndToEndTests {
    /// The keys under the prefix now: key → value.
    static func keys(_ etcd: EtcdServer, prefix: String) async throws -> [String: String] {
        let result = try await ExternalTool.run("etcdctl", ["--endpoints", etcd.liveEndpoint, "get", "--prefix", prefix])
        var keys: [String: String] = [:]
        var lines = result.stdout[...]
        while let key = lines.popFirst() {
            keys[key] = lines.popFirst() ?? ""
        }
        return keys
    }

    @Test func aWorkerUpgradeKeepsTheGatewaysKeysInEtcdThroughout() async throws {
        let etcd = try await EtcdServer.start()
        defer { etcd.stop() }
        let harness = try await GatewayHarness(backends: 0, yaml: GatewayHarness.etcdSupervisedConfig(etcd, instances: 1, publish: true))
        let port = try #require(try await harness.waitForReady(1).first?["port"] as? Int)
        let instanceKey = "/t/deployments/shop/backends/127.0.0.1:\(port)"
        var before: [String: String] = [:]
        let deadline = ContinuousClock.now + .seconds(10)
        while before[instanceKey] == nil || !before.keys.contains(where: { $0.hasPrefix("/t/gateways/") }), ContinuousClock.now < deadline {
            before = try await Self.keys(etcd, prefix: "/t/")
        }
        let reportKey = try #require(before.keys.first { $0.hasPrefix("/t/gateways/") }, "\(before)")
        #expect(before[instanceKey] == #"{"state":"serving"}"#)

        let (status, json) = try await harness.adminJSON(.POST, "/upgrade")
        #expect(status == 200, "\(json)")
        _ = try await harness.gateway.waitForOutput(containing: "worker handover finished", timeout: .seconds(30))
        // Past the old worker's lease (5 s): neither key may have gone at any moment.
        let watchUntil = ContinuousClock.now + .seconds(7)
        var missing: [String] = []
        while ContinuousClock.now < watchUntil {
            let now = try await Self.keys(etcd, prefix: "/t/")
            for key in [instanceKey, reportKey] where now[key] == nil { missing.append(key) }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(missing.isEmpty, "gone for a moment: \(Set(missing))")
    }
}

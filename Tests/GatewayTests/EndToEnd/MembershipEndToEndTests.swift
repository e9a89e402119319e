import Foundation
import Testing

/// Backends registered in a real etcd (started by the test) joining and leaving a real gateway's
/// deployment; demo backends as the registered apps.
@Suite(.serialized) struct MembershipEndToEndTests {
    static func config(etcd: String, fixed: String = "[]") -> String {
        """
        listen: {listen}
        admin: {listen: {admin}}
        membership:
          etcd: {endpoints: [\(etcd)], prefix: /t/, dial_timeout: 1s}
        deployments:
          - name: web
            backends: \(fixed)
        """
    }

    static func key(_ port: Int) -> String { "/t/deployments/web/backends/127.0.0.1:\(port)" }

    /// The names of the backends that answered `count` GETs in a row (a 503 counts as "503").
    static func answers(_ harness: GatewayHarness, count: Int = 6) async throws -> [String] {
        var names: [String] = []
        for _ in 0..<count {
            let response = try await TestHTTPClient.get(port: harness.port, path: "/", host: harness.host, timeout: .seconds(5))
            names.append(response.status.code == 200 ? String(response.bodyString.split(separator: " ").first ?? "") : "\(response.status.code)")
        }
        return names
    }

    /// Polls (every 50 ms, at most `timeout`) until `count` GETs in a row answer from exactly `expected`.
    static func waitForAnswers(_ harness: GatewayHarness, _ expected: Set<String>, timeout: Duration = .seconds(5)) async throws -> Duration {
        let start = ContinuousClock.now
        var last: [String] = []
        while ContinuousClock.now - start < timeout {
            last = try await answers(harness)
            if Set(last) == expected { return ContinuousClock.now - start }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestSupportError("still answering \(last), not only \(expected.sorted()), after \(timeout)\n\(harness.gateway.outputDescription)")
    }

    @Test func aRegisteredBackendJoinsDrainsAndLeaves() async throws {
        let etcd = try await EtcdServer.start()
        defer { etcd.stop() }
        let harness = try await GatewayHarness(backends: 2, yaml: Self.config(etcd: etcd.endpoint))
        let (b0, b1) = (harness.backendPorts[0], harness.backendPorts[1])
        // Nothing registered yet: the deployment has no backend.
        #expect(try await Self.answers(harness, count: 2) == ["503", "503"])

        try await etcd.put(Self.key(b0), "serving")
        let joined = try await Self.waitForAnswers(harness, ["b0"])
        #expect(joined < .seconds(1), "a registered backend took \(joined) to be routed to")
        // Starting is not in rotation; a value that means nothing changes nothing.
        try await etcd.put(Self.key(b1), "starting")
        try await etcd.put(Self.key(b0), "servng")
        _ = try await harness.gateway.waitForOutput(containing: "registered backend ignored", timeout: .seconds(5))
        #expect(Set(try await Self.answers(harness)) == ["b0"])

        try await etcd.put(Self.key(b1), #"{"state":"serving","weight":1}"#)
        _ = try await Self.waitForAnswers(harness, ["b0", "b1"])

        try await etcd.put(Self.key(b0), "draining")
        _ = try await Self.waitForAnswers(harness, ["b1"])
        try await etcd.delete(Self.key(b1))
        _ = try await Self.waitForAnswers(harness, ["503"])
        #expect(harness.gateway.stderrLines.contains { $0.contains("registered backend left") && $0.contains("127.0.0.1:\(b1)") })
    }

    @Test func weightsShareTheRequests() async throws {
        let etcd = try await EtcdServer.start()
        defer { etcd.stop() }
        let harness = try await GatewayHarness(backends: 2, yaml: Self.config(etcd: etcd.endpoint))
        try await etcd.put(Self.key(harness.backendPorts[0]), #"{"state":"serving","weight":3}"#)
        try await etcd.put(Self.key(harness.backendPorts[1]), "serving")
        _ = try await Self.waitForAnswers(harness, ["b0", "b1"])
        let names = try await Self.answers(harness, count: 80)
        let heavy = names.filter { $0 == "b0" }.count
        #expect((52...68).contains(heavy), "b0 (weight 3) answered \(heavy) of 80")
        // A new weight applies without a leave.
        try await etcd.put(Self.key(harness.backendPorts[0]), #"{"state":"serving","weight":1}"#)
        _ = try await harness.gateway.waitForOutput(containing: "registered backend changed", timeout: .seconds(5))
        let even = try await Self.answers(harness, count: 80).filter { $0 == "b0" }.count
        #expect((32...48).contains(even), "b0 (weight 1) answered \(even) of 80")
    }

    @Test func etcdLostKeepsTheLastMembershipAndAChangeAfterItReturnsApplies() async throws {
        let etcd = try await EtcdServer.start()
        defer { etcd.stop() }
        let harness = try await GatewayHarness(backends: 2, yaml: Self.config(etcd: etcd.endpoint))
        let (b0, b1) = (harness.backendPorts[0], harness.backendPorts[1])
        try await etcd.put(Self.key(b0), "serving")
        _ = try await Self.waitForAnswers(harness, ["b0"])

        etcd.kill()
        _ = try await harness.gateway.waitForOutput(containing: "etcd membership unreachable", timeout: .seconds(10))
        #expect(Set(try await Self.answers(harness, count: 10)) == ["b0"])

        try await etcd.restart()
        try await etcd.put(Self.key(b1), "serving")
        try await etcd.put(Self.key(b0), "draining")
        // The gateway retries at most every 5 s.
        _ = try await Self.waitForAnswers(harness, ["b1"], timeout: .seconds(15))
        #expect(harness.gateway.stderrLines.contains { $0.contains("etcd membership reachable again") })
    }

    @Test func withoutEtcdTheFixedBackendsServe() async throws {
        let refused = try RefusingPort()
        let harness = try await GatewayHarness(
            backends: 1, yaml: Self.config(etcd: "127.0.0.1:\(refused.port)", fixed: "[{backend0}]"))
        #expect(try await Self.answers(harness, count: 3) == ["b0", "b0", "b0"])
        _ = try await harness.gateway.waitForOutput(containing: "etcd membership unreachable", timeout: .seconds(10))
    }

    @Test func aRegisteredBackendThatStopsAnsweringLeavesUntilItIsBack() async throws {
        let etcd = try await EtcdServer.start()
        defer { etcd.stop() }
        let harness = try await GatewayHarness(backends: 2, yaml: Self.config(etcd: etcd.endpoint))
        let (b0, b1) = (harness.backendPorts[0], harness.backendPorts[1])
        try await etcd.put(Self.key(b0), "serving")
        try await etcd.put(Self.key(b1), "serving")
        _ = try await Self.waitForAnswers(harness, ["b0", "b1"])

        // Its host "crashed": the key stays (its lease would outlive it), the checks take it out.
        harness.backends[0].killAndReap()
        _ = try await harness.gateway.waitForOutput(containing: "registered backend failed its checks", timeout: .seconds(10))
        #expect(Set(try await Self.answers(harness, count: 10)) == ["b1"])

        let again = try ChildProcess.gateway(["demo-backend", "--port", "\(b0)", "--name", "b0"])
        _ = try await again.waitForOutput(containing: "listening on", timeout: .seconds(20))
        _ = try await Self.waitForAnswers(harness, ["b0", "b1"], timeout: .seconds(10))
    }

    @Test func aReloadThatChangesMembershipSaysItTakesANewWorker() async throws {
        let refused = try RefusingPort()
        let harness = try await GatewayHarness(
            backends: 1, yaml: Self.config(etcd: "127.0.0.1:\(refused.port)", fixed: "[{backend0}]"))
        let path = harness.directory.appendingPathComponent("gateway.yaml")
        let text = try String(contentsOf: path, encoding: .utf8).replacingOccurrences(of: "prefix: /t/", with: "prefix: /other/")
        try text.write(to: path, atomically: true, encoding: .utf8)
        let reload = try await harness.admin(.POST, "/reload")
        #expect(reload.status == .ok, "\(reload.bodyString)")
        #expect(reload.bodyString.contains("membership takes a new worker (gateway upgrade); still etcd 127.0.0.1:\(refused.port) prefix /t/"), "\(reload.bodyString)")
    }

    @Test func aBackendThatDoesNotAnswerStaysOutOfRotation() async throws {
        let etcd = try await EtcdServer.start()
        defer { etcd.stop() }
        let refused = try RefusingPort()
        let harness = try await GatewayHarness(backends: 1, yaml: Self.config(etcd: etcd.endpoint))
        try await etcd.put(Self.key(refused.port), "serving")
        _ = try await harness.gateway.waitForOutput(containing: "registered backend not reachable", timeout: .seconds(5))
        #expect(try await Self.answers(harness, count: 2) == ["503", "503"])
        try await etcd.put(Self.key(harness.backendPorts[0]), "serving")
        _ = try await Self.waitForAnswers(harness, ["b0"])
    }
}

@Suite(.serialized) struct MembershipClusterEndToEndTests {
    @Test func twoGatewaysOnAThreeMemberClusterRideOutLostMembers() async throws {
        let etcd = try await EtcdServer.start(members: 3)
        defer { etcd.stop() }
        let yaml = MembershipEndToEndTests.config(etcd: etcd.endpoint)
        let g2 = try await GatewayHarness(backends: 2, yaml: yaml, host: "127.0.0.2")
        let g3 = try await GatewayHarness(backends: 0, yaml: yaml, host: "127.0.0.3")
        let gateways = [g2, g3]
        let (b0, b1) = (g2.backendPorts[0], g2.backendPorts[1])
        try await etcd.put(MembershipEndToEndTests.key(b0), "serving")
        for gateway in gateways { _ = try await MembershipEndToEndTests.waitForAnswers(gateway, ["b0"]) }

        // One member of three lost: nothing changes, and changes still arrive.
        etcd.kill(0)
        #expect(Set(try await MembershipEndToEndTests.answers(g2)) == ["b0"])
        try await etcd.put(MembershipEndToEndTests.key(b1), "serving")
        for gateway in gateways { _ = try await MembershipEndToEndTests.waitForAnswers(gateway, ["b0", "b1"]) }
        for gateway in gateways {
            #expect(!gateway.gateway.stderrLines.contains { $0.contains("etcd membership unreachable") }, "\(gateway.host)")
        }

        // Every member lost: both keep serving the last membership.
        etcd.kill()
        for gateway in gateways {
            _ = try await gateway.gateway.waitForOutput(containing: "etcd membership unreachable", timeout: .seconds(10))
            #expect(Set(try await MembershipEndToEndTests.answers(gateway, count: 10)) == ["b0", "b1"])
        }

        // Back: a change made now reaches both.
        try await etcd.restart()
        try await etcd.put(MembershipEndToEndTests.key(b0), "draining")
        for gateway in gateways { _ = try await MembershipEndToEndTests.waitForAnswers(gateway, ["b1"], timeout: .seconds(15)) }
    }
}

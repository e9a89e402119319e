import Foundation
import Testing

/// `gateway suspend` and `gateway resume` against a real gateway in front of a real demo
/// backend: the CLI's requests have the effect the operator means, seen in `/stats` and by
/// clients, and the gateway's refusals reach the operator with its own words.
@Suite(.timeLimit(.minutes(2)))
struct AdminCLIEndToEndTests {
    static func deploymentState(_ stats: [String: Any], _ name: String = "shop") -> String? {
        let deployments = stats["deployments"] as? [[String: Any]] ?? []
        return deployments.first { $0["name"] as? String == name }?["state"] as? String
    }

    @Test func suspendAndResumeADeployment() async throws {
        let h = try await GatewayHarness(yaml: GatewayHarness.simpleConfig())
        let admin = "http://127.0.0.1:\(h.adminPort)"
        #expect(Self.deploymentState(try await h.stats()) == "RUNNING")

        let suspend = try await AdminCLIClientTests.gateway(["suspend", "shop", "--timeout", "5", "--admin", admin])
        #expect(suspend.status == 0, "\(suspend)")
        #expect(suspend.stdout.contains("scope:   deployment 'shop'"))
        #expect(suspend.stdout.contains("state:   SUSPENDED"))
        #expect(suspend.stdout.contains("drained: yes"))
        let suspended = try await h.stats()
        #expect(Self.deploymentState(suspended) == "SUSPENDED")
        // Only the deployment: the gateway as a whole still runs.
        #expect(suspended["state"] as? String == "RUNNING")
        #expect(try await h.get("/").status == .serviceUnavailable)

        let resume = try await AdminCLIClientTests.gateway(["resume", "shop", "--admin", admin])
        #expect(resume.status == 0, "\(resume)")
        #expect(resume.stdout.first == "scope: deployment 'shop'")
        #expect(Self.deploymentState(try await h.stats()) == "RUNNING")
        #expect(try await h.get("/").status == .ok)
    }

    @Test func suspendThatTimesOutWithARequestInFlightExitsOne() async throws {
        let h = try await GatewayHarness(yaml: GatewayHarness.simpleConfig())
        let admin = "http://127.0.0.1:\(h.adminPort)"
        let slow = Task { try await h.get("/sleep?ms=3000") }
        try await h.waitForActive(1)
        let suspend = try await AdminCLIClientTests.gateway(["suspend", "--timeout", "0.3", "--admin", admin])
        #expect(suspend.status == 1, "\(suspend)")
        #expect(suspend.stdout.contains("drained: no"))
        #expect(suspend.stdout.contains("active:  1"))
        #expect(suspend.stderr == ["gateway: gateway did not drain before the timeout: 1 request still in flight"])
        // The request admitted before the suspend still completes.
        #expect(try await slow.value.status == .ok)
        let resume = try await AdminCLIClientTests.gateway(["resume", "--admin", admin])
        #expect(resume.status == 0, "\(resume)")
        #expect(try await h.get("/").status == .ok)
    }

    @Test func unknownDeploymentExitsOneWithTheGatewaysMessage() async throws {
        let h = try await GatewayHarness(yaml: GatewayHarness.simpleConfig())
        // What the gateway itself says about the scope, asked directly.
        let (status, json) = try await h.adminJSON(.POST, "/suspend?deployment=nosuch&timeout=0")
        #expect(status == 404)
        let message = try #require(json["error"] as? String)
        #expect(message.contains("nosuch"))

        let run = try await AdminCLIClientTests.gateway(["suspend", "nosuch", "--admin", "http://127.0.0.1:\(h.adminPort)"])
        #expect(run.status == 1, "\(run)")
        #expect(run.stderr == ["gateway: \(message)"])
        #expect(run.stdout.isEmpty)
        // Nothing changed.
        #expect(Self.deploymentState(try await h.stats()) == "RUNNING")
        #expect(try await h.get("/").status == .ok)
    }
}

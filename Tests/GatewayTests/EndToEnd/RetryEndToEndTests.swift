import Foundation
import NIOHTTP1
import Testing

/// Backends that fail: a request whose backend broke before answering goes to another backend
/// when that is safe (idempotent, or its body never left), within `retries` and the retry
/// budget; a fixed backend that keeps failing is ejected and let back by a probe, never by a
/// client; the last backend is never ejected.
@Suite(.timeLimit(.minutes(2)))
struct RetryEndToEndTests {
    static func backendStats(_ stats: [String: Any], _ address: String) -> [String: Any] {
        let deployments = stats["deployments"] as? [[String: Any]] ?? []
        let backends = deployments.first?["backends"] as? [[String: Any]] ?? []
        return backends.first { $0["address"] as? String == address } ?? [:]
    }

    /// Four slow GETs spread over two backends; one backend is killed with SIGKILL while they
    /// are in flight: all four are answered 200 (nginx did this; the gateway used to answer two
    /// with 502).
    @Test func getsInFlightOnAKilledBackendAreRetriedOnTheOther() async throws {
        let h = try await GatewayHarness(backends: 2, yaml: GatewayHarness.simpleConfig())
        try await Self.killOneBackendUnderSlowGets(h)
        let stats = try await h.stats()
        #expect((stats["retries"] as? [String: Any])?["attempted"] as? Int == 2, "\(stats)")
    }

    /// The same on pooled keep-alive connections (a first round of requests leaves them in the
    /// pool): the closed one looks like a stale keep-alive connection, the fresh connection to
    /// the same backend is refused, and the request must still go to the other backend.
    @Test func getsInFlightOnPooledConnectionsToAKilledBackendAreRetriedOnTheOther() async throws {
        let h = try await GatewayHarness(backends: 2, yaml: GatewayHarness.simpleConfig())
        let warm = (0..<4).map { _ in Task { try await h.get("/sleep?ms=300") } }
        for request in warm { #expect(try await request.value.status == .ok) }
        try await Self.killOneBackendUnderSlowGets(h)
    }

    /// Four slow GETs, two on each of two backends; the first backend is killed with SIGKILL
    /// while they run; every GET must still be answered 200.
    static func killOneBackendUnderSlowGets(_ h: GatewayHarness) async throws {
        let requests = (0..<4).map { _ in Task { try await h.get("/sleep?ms=1500") } }
        try await h.waitForStats("two requests on each backend") { stats in
            let backends = (stats["deployments"] as? [[String: Any]])?.first?["backends"] as? [[String: Any]] ?? []
            return backends.count == 2 && backends.allSatisfy { $0["active"] as? Int == 2 }
        }
        h.backends[0].killAndReap()
        for request in requests {
            let response = try await request.value
            #expect(response.status == .ok, "\(String(decoding: response.body, as: UTF8.self))")
        }
    }

    /// A backend that reads the whole request and closes without answering: a GET is retried
    /// on the other backend; a POST whose body was sent is not (502), and reached one backend once.
    @Test func aPostWhoseBodyWasSentIsNeverRetried() async throws {
        let silent = try await RecordingBackend { _ in RecordingBackend.Reply(bytes: [], close: true) }
        let good = try await RecordingBackend()
        let yaml = GatewayHarness.simpleConfig(extra: "")
            .replacingOccurrences(of: "{backends}", with: "[127.0.0.1:\(silent.port), 127.0.0.1:\(good.port)]")
            .replacingOccurrences(of: "    backends:", with: "    eject_after: 0\n    backends:")
        let h = try await GatewayHarness(backends: 0, yaml: yaml)
        var postStatuses: [Int] = []
        for round in 0..<6 {
            let get = try await h.get("/get/\(round)")
            #expect(get.status == .ok, "GET \(round)")
            let post = try await TestHTTPClient.withConnection(port: h.port) { client in
                try await client.request(.POST, "/post/\(round)", body: Array("order \(round)".utf8))
            }
            postStatuses.append(Int(post.status.code))
        }
        // Least-connections with round robin among ties sends some of each to the silent one.
        #expect(postStatuses.contains(502), "\(postStatuses)")
        let posts = (silent.requests + good.requests).filter { $0.method == "POST" }
        #expect(posts.count == 6, "each POST reached a backend exactly once: \(posts)")
        #expect(Set(posts.map(\.uri)).count == 6)
    }

    /// A fixed backend that refuses connections is ejected after `eject_after` failures, the
    /// requests meanwhile are retried on the others, and a passing probe lets it back.
    @Test func aFailingBackendIsEjectedAndAProbeLetsItBack() async throws {
        let h = try await GatewayHarness(
            backends: 2, deadBackends: 1,
            yaml: GatewayHarness.simpleConfig()
                .replacingOccurrences(of: "    backends:", with: "    eject_after: 2\n    eject_for: 500ms\n    backends:"))
        let dead = "127.0.0.1:\(h.backendPorts[2])"
        for _ in 0..<12 {
            #expect(try await h.get("/").status == .ok)
        }
        let stats = try await h.stats()
        let deadStats = Self.backendStats(stats, dead)
        #expect(deadStats["ejected"] as? Bool == true, "\(deadStats)")
        #expect(deadStats["ejections"] as? Int == 1)
        // Ejected after exactly two failures: no client request was spent on it since.
        #expect(deadStats["failures"] as? Int == 2, "\(deadStats)")
        #expect(h.gateway.stderrLines.contains { $0.contains("backend ejected") })

        // It starts listening; the next probe (0.5 s, then 1 s, ...) lets it back.
        h.refusingPorts[0].startListening()
        try await h.waitForStats("the backend restored") { Self.backendStats($0, dead)["ejected"] as? Bool == false }
        #expect(h.gateway.stderrLines.contains { $0.contains("backend restored") })
    }

    /// A request answered 502 while its connect was pending (reads are held meanwhile) leaves
    /// the keep-alive connection reading: the next request on it is answered too. It used to
    /// hang (found by bench/origins-restart: one stuck request per client connection).
    @Test func aConnectionKeepsReadingAfterA502ForAFailedConnect() async throws {
        let h = try await GatewayHarness(backends: 0, deadBackends: 1, yaml: GatewayHarness.simpleConfig())
        let answer = try await TestHTTPClient.raw(
            port: h.port, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n", responses: 1, timeout: .seconds(5))
        #expect(answer.hasPrefix("HTTP/1.1 502"))
        try await TestHTTPClient.withConnection(port: h.port, timeout: .seconds(5)) { client in
            for _ in 0..<3 {
                let status = try await client.request(.GET, "/").status
                #expect(status == .badGateway)
            }
        }
    }

    /// Two backends were ejected and have come back (their ejection runs for a minute); the
    /// third dies. Its requests go to the ejected ones rather than failing (Envoy's panic mode).
    @Test func whenOnlyEjectedBackendsAreLeftTheyAreTriedRatherThanFailing() async throws {
        let h = try await GatewayHarness(
            backends: 3,
            yaml: GatewayHarness.simpleConfig()
                .replacingOccurrences(of: "    backends:", with: "    eject_after: 1\n    eject_for: 60s\n    backends:"))
        h.backends[0].killAndReap()
        h.backends[1].killAndReap()
        // Requests that pick a dead backend fail over to the live one, and eject the dead one.
        try await h.poll(
            timeout: .seconds(20), "two backends ejected",
            fetch: {
                #expect(try await h.get("/").status == .ok)
                return try await h.stats()
            },
            until: { stats in
                let backends = (stats["deployments"] as? [[String: Any]])?.first?["backends"] as? [[String: Any]] ?? []
                return backends.filter { $0["ejected"] as? Bool == true }.count == 2
            })
        var revived: [ChildProcess] = []
        for index in 0..<2 {
            let backend = try ChildProcess.gateway(["demo-backend", "--port", String(h.backendPorts[index]), "--name", "r\(index)"])
            _ = try await backend.waitForOutput(containing: "listening on", timeout: .seconds(20))
            revived.append(backend)
        }
        h.backends[2].killAndReap()
        for _ in 0..<4 {
            let response = try await h.get("/")
            #expect(response.status == .ok, "\(String(decoding: response.body, as: UTF8.self))")
        }
    }

    /// The last backend a deployment can choose is never ejected: when it comes back, the next
    /// request is served at once.
    @Test func theLastBackendIsNeverEjected() async throws {
        let h = try await GatewayHarness(
            backends: 0, deadBackends: 1,
            yaml: GatewayHarness.simpleConfig().replacingOccurrences(of: "    backends:", with: "    eject_after: 1\n    backends:"))
        for _ in 0..<5 {
            #expect(try await h.get("/").status == .badGateway)
        }
        let deadStats = Self.backendStats(try await h.stats(), "127.0.0.1:\(h.backendPorts[0])")
        #expect(deadStats["ejected"] as? Bool == false, "\(deadStats)")
        #expect(deadStats["failures"] as? Int == 5)
        // Logged once for the run of failures, not once per request.
        #expect(h.gateway.stderrLines.filter { $0.contains("backend connect failed") }.count == 1)
    }
}

import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing

/// The admin listener cannot be used to starve the proxy: idle admin connections are closed,
/// a slow request is cut, and connections over `admin.max_connections` are closed at once.
@Suite(.timeLimit(.minutes(2)))
struct AdminLimitsEndToEndTests {
    static func config(idle: String, request: String = "1s", maxConnections: Int = 64) -> String {
        GatewayHarness.simpleConfig().replacingOccurrences(
            of: "admin:\n  listen: {admin}\n",
            with: "admin:\n  listen: {admin}\n  idle_timeout: \(idle)\n  request_timeout: \(request)\n  max_connections: \(maxConnections)\n")
    }

    /// A TCP connection that sends nothing.
    static func connect(_ port: Int) async throws -> Channel {
        try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(5))
            .connect(host: "127.0.0.1", port: port)
            .get()
    }

    /// Waits for the server to close `channel` (its close event, not a guess) and returns how
    /// long that took, or nil when it was still open after `timeout` (the channel is closed then).
    static func closedByServer(_ channel: Channel, within timeout: Duration) async -> Duration? {
        let started = ContinuousClock.now
        let closed = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                try? await channel.closeFuture.get()
                return true
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            // Ends the close wait when the timer won.
            if !first { try? await channel.close() }
            return first
        }
        return closed ? ContinuousClock.now - started : nil
    }

    @Test func connectionsOverTheCapAreClosedAtOnceAndTheProxyKeepsAnswering() async throws {
        let h = try await GatewayHarness(yaml: Self.config(idle: "4s", maxConnections: 4))
        var held: [Channel] = []
        for _ in 0..<4 { held.append(try await Self.connect(h.adminPort)) }
        // Past the cap: accepted and closed at once, long before the 4 s idle timeout.
        for index in 0..<8 {
            let excess = try await Self.connect(h.adminPort)
            let took = await Self.closedByServer(excess, within: .seconds(3))
            #expect(took != nil, "excess admin connection \(index) was left open")
        }
        // The proxy is not affected.
        #expect(try await h.get("/").status == .ok)
        // The held ones go at the idle timeout, and then the admin API answers again.
        for channel in held {
            let took = try #require(await Self.closedByServer(channel, within: .seconds(10)))
            #expect(took < .seconds(8))
        }
        let stats = try await h.poll(timeout: .seconds(10), "an admin answer once the idle connections are gone") {
            try? await h.stats()
        } until: { $0 != nil }
        let admin = try #require(stats?["admin"] as? [String: Any], "\(String(describing: stats))")
        #expect(admin["max_connections"] as? Int == 4)
        #expect((admin["refused_connections"] as? Int ?? 0) >= 8, "\(admin)")
        // Counted, not one log line per refusal.
        let lines = h.gateway.stderrLines.filter { $0.contains("admin connection refused") }
        #expect((1...2).contains(lines.count), "\(lines)")
    }

    @Test func anIdleAdminConnectionIsClosedAfterTheIdleTimeout() async throws {
        let h = try await GatewayHarness(yaml: Self.config(idle: "1s", request: "5s"))
        let silent = try await Self.connect(h.adminPort)
        let took = try #require(await Self.closedByServer(silent, within: .seconds(10)))
        #expect(took >= .milliseconds(900) && took < .seconds(5), "closed after \(took)")

        // After an answer on a keep-alive connection, the idle timeout starts again.
        let closedAfterAnswer = try await TestHTTPClient.withConnection(port: h.adminPort) { client in
            let health = try await client.request(.GET, "/health")
            return (health.status, await client.waitForServerClose(timeout: .seconds(5)))
        }
        #expect(closedAfterAnswer.0 == .ok)
        #expect(closedAfterAnswer.1)
    }

    @Test func aSlowAdminRequestIsCutAndALongOperationIsNot() async throws {
        let h = try await GatewayHarness(yaml: Self.config(idle: "1s", request: "1s"))
        // A head that never ends: 408 and closed once request_timeout has passed.
        let started = ContinuousClock.now
        let answer = try await TestHTTPClient.raw(port: h.adminPort, "GET /health HTTP/1.1\r\nHost: x\r\n", timeout: .seconds(5))
        #expect(answer.hasPrefix("HTTP/1.1 408"), "\(answer)")
        #expect(ContinuousClock.now - started < .seconds(4))

        // A suspend that waits 2.5 s for a request in flight outlasts both timeouts and still answers.
        let slow = Task { try? await h.get("/sleep?ms=4000") }
        try await h.waitForActive(1)
        let suspend = try await h.adminJSON(.POST, "/suspend?deployment=shop&timeout=2.5")
        #expect(suspend.status == 200)
        #expect(suspend.json["drained"] as? Bool == false)
        _ = await slow.value
    }
}

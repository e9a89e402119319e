import Foundation
import NIOCore
import NIOHTTP1
import Testing

/// Idle keep-alive connections parked outside the event loops (`timeouts.park_idle`), seen from
/// clients: a parked connection is served when it speaks again, closes at its idle timeout, closes
/// in a drain, and is forgotten when its client leaves.
@Suite(.timeLimit(.minutes(2)))
struct IdleParkingEndToEndTests {
    /// Counts are compared before and after each step, not with fixed totals: on a loaded machine
    /// a fresh connection may be parked before its first request too.
    static func config(parkIdle: String = "300ms", idle: String = "60s") -> String {
        GatewayHarness.simpleConfig(extra: "timeouts:\n  park_idle: \(parkIdle)\n  idle: \(idle)\n")
    }

    static func http1(_ stats: [String: Any]) -> [String: Any] {
        ((stats["protocols"] as? [String: Any])?["http1"] as? [String: Any]) ?? [:]
    }

    static func parked(_ stats: [String: Any]) -> Int { http1(stats)["parked_connections"] as? Int ?? -1 }
    static func resumes(_ stats: [String: Any]) -> Int { http1(stats)["resumes"] as? Int ?? -1 }
    static func parks(_ stats: [String: Any]) -> Int { http1(stats)["parks"] as? Int ?? -1 }

    @Test func aParkedConnectionIsServedWhenItSpeaksAgain() async throws {
        let h = try await GatewayHarness(yaml: Self.config())
        try await TestHTTPClient.withConnection(port: h.port) { client in
            #expect(try await client.request(.GET, "/").status == .ok)
            let parked = try await h.waitForStats("the connection to be parked") { Self.parked($0) == 1 }
            // The same connection, back from the parking: a request with a body reaches the
            // backend whole, and its answer comes back on it.
            let body = Array("parked and back".utf8)
            let echoed = try await client.request(.POST, "/echo", body: body)
            #expect(echoed.status == .ok)
            #expect(echoed.body == body)
            let back = try await h.stats()
            #expect(Self.resumes(back) == Self.resumes(parked) + 1)
            #expect(Self.http1(back)["requests"] as? Int == 2)
            // Idle again: parked again, and back again.
            let again = try await h.waitForStats("the connection to be parked again") {
                Self.parked($0) == 1 && Self.parks($0) > Self.parks(parked)
            }
            #expect(try await client.request(.GET, "/").status == .ok)
            #expect(Self.resumes(try await h.stats()) == Self.resumes(again) + 1)
        }
    }

    @Test func aParkedConnectionClosesWhenItsIdleTimeoutEnds() async throws {
        let h = try await GatewayHarness(yaml: Self.config(parkIdle: "100ms", idle: "3s"))
        try await TestHTTPClient.withConnection(port: h.port) { client in
            #expect(try await client.request(.GET, "/").status == .ok)
            let idleSince = ContinuousClock.now
            try await h.waitForStats("the connection to be parked") { Self.parked($0) == 1 }
            #expect(await client.waitForServerClose(timeout: .seconds(10)))
            // The idle timeout (3 s) runs from the end of the last response: it neither ends at
            // the parking (100 ms) nor starts again there.
            let closedAfter = ContinuousClock.now - idleSince
            #expect(closedAfter >= .seconds(2))
            #expect(closedAfter < .seconds(6))
        }
        #expect(Self.parked(try await h.stats()) == 0)
    }

    @Test func aDrainClosesParkedConnections() async throws {
        let h = try await GatewayHarness(yaml: Self.config())
        try await TestHTTPClient.withConnection(port: h.port) { client in
            #expect(try await client.request(.GET, "/").status == .ok)
            try await h.waitForStats("the connection to be parked") { Self.parked($0) == 1 }
            let (status, json) = try await h.adminJSON(.POST, "/suspend?timeout=1")
            #expect(status == 200)
            #expect(json["drained"] as? Bool == true)
            #expect(await client.waitForServerClose(timeout: .seconds(5)))
        }
        #expect(Self.parked(try await h.stats()) == 0)
        _ = try await h.adminJSON(.POST, "/resume")
        #expect(try await h.get("/").status == .ok)
    }

    @Test func aClientThatLeavesWhileParkedIsForgotten() async throws {
        let h = try await GatewayHarness(yaml: Self.config())
        let resumesWhenParked = try await TestHTTPClient.withConnection(port: h.port) { client in
            #expect(try await client.request(.GET, "/").status == .ok)
            return Self.resumes(try await h.waitForStats("the connection to be parked") { Self.parked($0) == 1 })
        }
        // The client closed: the parked socket is closed and no longer counted, not resumed.
        let stats = try await h.waitForStats("the parked connection to be gone") { Self.parked($0) == 0 }
        #expect(Self.resumes(stats) == resumesWhenParked)
    }

    @Test func aConnectionParkedBeforeItsFirstRequestCanBecomeATunnel() async throws {
        let h = try await GatewayHarness(yaml: Self.config())
        let connection = try await StalledRequestEndToEndTests.connect(port: h.port)
        try await connection.executeThenClose { inbound, outbound in
            // Connected, silent: parked before it said anything.
            try await h.waitForStats("the connection to be parked") { Self.parked($0) == 1 }
            try await outbound.write(ByteBuffer(string: UpgradeEndToEndTests.handshake))
            var reader = ByteReader(inbound.makeAsyncIterator())
            let head = try await reader.readUntil("\r\n\r\n")
            #expect(head.hasPrefix("HTTP/1.1 101"))
            // The tunnel carries frames both ways, and is not parked while it lasts (it is no
            // idle HTTP/1.1 connection).
            for _ in 0..<3 {
                try await outbound.write(ByteBuffer(bytes: UpgradeEndToEndTests.textFrame("ping")))
                #expect(try await reader.read(count: 6) == [0x81, 0x04] + Array("ping".utf8))
            }
            let parks = Self.parks(try await h.stats())
            try await Task.sleep(for: .milliseconds(700))
            try await outbound.write(ByteBuffer(bytes: UpgradeEndToEndTests.textFrame("ping")))
            #expect(try await reader.read(count: 6) == [0x81, 0x04] + Array("ping".utf8))
            #expect(Self.parks(try await h.stats()) == parks)
        }
    }

    @Test func parkingCanBeTurnedOff() async throws {
        let h = try await GatewayHarness(yaml: Self.config(parkIdle: "0s", idle: "3s"))
        try await TestHTTPClient.withConnection(port: h.port) { client in
            let first = try await client.request(.GET, "/")
            #expect(first.status == .ok)
            // Left in its channel, it closes at its idle timeout without ever being parked.
            #expect(await client.waitForServerClose(timeout: .seconds(10)))
        }
        #expect(Self.http1(try await h.stats())["parks"] as? Int == 0)
    }
}

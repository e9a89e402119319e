import Foundation
import NIOCore
import NIOPosix
import Testing

/// Requests that stop moving must not hold their admission: a body that makes no progress gets
/// 408 after `timeouts.request_body`, an idle tunnel is closed after `timeouts.tunnel_idle`, and
/// both are counted in `/stats`.
@Suite(.timeLimit(.minutes(2)))
struct StalledRequestEndToEndTests {
    static func timeouts(_ stats: [String: Any]) -> [String: Any] { stats["timeouts"] as? [String: Any] ?? [:] }

    /// A raw byte connection to 127.0.0.1:`port`.
    static func connect(port: Int) async throws -> NIOAsyncChannel<ByteBuffer, ByteBuffer> {
        try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
    }

    /// Opens a connection, writes `text` and returns it open; the caller reads or closes it.
    static func open(port: Int, _ text: String) async throws -> NIOAsyncChannel<ByteBuffer, ByteBuffer> {
        let connection = try await connect(port: port)
        try await connection.outbound.write(ByteBuffer(string: text))
        return connection
    }

    /// Everything the server sends until it closes (bounded by `timeout`).
    static func readToClose(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>, timeout: Duration) async throws -> String {
        let channel = connection.channel
        let timer = channel.eventLoop.scheduleTask(in: TimeAmount(timeout)) { channel.close(promise: nil) }
        defer { timer.cancel() }
        var received: [UInt8] = []
        do {
            for try await buffer in connection.inbound {
                received += buffer.readableBytesView
            }
        } catch {}
        return String(decoding: received, as: UTF8.self)
    }

    @Test func stalledBodiesAre408AndFreeTheirSlots() async throws {
        let h = try await GatewayHarness(
            yaml: GatewayHarness.simpleConfig(globalLimit: 4, extra: "timeouts:\n  request_body: 3s\n"))
        // /status answers only after the whole body, so nothing of a response has started.
        let stalled = "POST /status/201 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789"
        var connections: [NIOAsyncChannel<ByteBuffer, ByteBuffer>] = []
        for _ in 0..<4 { connections.append(try await Self.open(port: h.port, stalled)) }
        // While they hold every slot, others are refused; then each stalled body gets its 408.
        try await h.waitForActive(4)
        let refused = try await h.get("/")
        #expect(refused.status == .serviceUnavailable)
        let started = ContinuousClock.now
        for connection in connections {
            let answer = try await Self.readToClose(connection, timeout: .seconds(10))
            #expect(answer.hasPrefix("HTTP/1.1 408"), "\(answer)")
            #expect(answer.lowercased().contains("connection: close"))
        }
        #expect(ContinuousClock.now - started < .seconds(10))
        try await h.waitForActive(0)
        #expect(try await h.get("/").status == .ok)
        let stats = try await h.stats()
        #expect(Self.timeouts(stats)["request_body"] as? Int == 4, "\(stats)")
    }

    /// A response already under way (the echo streams back at once) cannot become a 408: the
    /// connection is cut and the request still ends.
    @Test func aStalledBodyUnderAStartedResponseIsCut() async throws {
        let h = try await GatewayHarness(yaml: GatewayHarness.simpleConfig(extra: "timeouts:\n  request_body: 1s\n"))
        let connection = try await Self.open(port: h.port, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        let answer = try await Self.readToClose(connection, timeout: .seconds(10))
        #expect(answer.hasPrefix("HTTP/1.1 200"), "\(answer)")
        #expect(answer.hasSuffix("0123456789"))
        try await h.waitForActive(0)
        #expect(Self.timeouts(try await h.stats())["request_body"] as? Int == 1)
    }

    /// HTTP/2: a stream whose upload stops (10 bytes, then 5 s of nothing, its window open)
    /// gets 408 after `request_body` and stops counting; the connection stays up.
    @Test func aStalledH2UploadGets408() async throws {
        let h = try await GatewayHarness(yaml: HTTP2EndToEndTests.config(extra: "timeouts:\n  request_body: 1s\n"))
        let report = try await HTTP2AbuseEndToEndTests.peer(
            ["slow-upload", "--path", "/status/201", "--body-bytes", "20", "--chunk-bytes", "10",
             "--interval-ms", "5000"], port: h.port)
        #expect(report["status"] as? Int == 408, "\(report)")
        #expect(report["connection_closed"] as? Bool == false, "\(report)")
        try await h.waitForActive(0)
        #expect(Self.timeouts(try await h.stats())["request_body"] as? Int == 1)
    }

    @Test func aBodyThatKeepsMovingIsNotCutOff() async throws {
        let h = try await GatewayHarness(yaml: GatewayHarness.simpleConfig(extra: "timeouts:\n  request_body: 2s\n"))
        // 8 pieces 400 ms apart: 2.8 s in all, more than the limit, never 2 s without progress.
        let chunks = AsyncStreamOf((0..<8).map { _ in [UInt8](repeating: 7, count: 10) }, interval: .milliseconds(400))
        let response = try await TestHTTPClient.withConnection(port: h.port) { client in
            try await client.request(.POST, "/echo", chunks: chunks)
        }
        #expect(response.status == .ok)
        #expect(response.body.count == 80)
        #expect(Self.timeouts(try await h.stats())["request_body"] as? Int == 0)
    }

    @Test func expectContinueWithoutABodyIsClosed() async throws {
        let h = try await GatewayHarness(yaml: GatewayHarness.simpleConfig(extra: "timeouts:\n  request_body: 1s\n"))
        let connection = try await Self.open(
            port: h.port, "POST /status/201 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        let answer = try await Self.readToClose(connection, timeout: .seconds(10))
        #expect(answer.hasPrefix("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 408"), "\(answer)")
        try await h.waitForActive(0)
    }

    @Test func anIdleTunnelIsClosedAndABusyOneIsNot() async throws {
        let h = try await GatewayHarness(yaml: GatewayHarness.simpleConfig(extra: "timeouts:\n  tunnel_idle: 3s\n"))
        let busy = try await Self.open(port: h.port, UpgradeEndToEndTests.handshake)
        let idle = try await Self.open(port: h.port, UpgradeEndToEndTests.handshake)
        try await h.waitForActive(2)
        // The busy one echoes a frame every 300 ms for 4.2 s; the idle one is closed meanwhile.
        var reader = ByteReader(busy.inbound.makeAsyncIterator())
        let head = try await reader.readUntil("\r\n\r\n")
        #expect(head.hasPrefix("HTTP/1.1 101"))
        for _ in 0..<14 {
            try await busy.outbound.write(ByteBuffer(bytes: UpgradeEndToEndTests.textFrame("ping")))
            #expect(try await reader.read(count: 6) == [0x81, 0x04] + Array("ping".utf8))
            try await Task.sleep(for: .milliseconds(300))
        }
        let idleAnswer = try await Self.readToClose(idle, timeout: .seconds(8))
        #expect(idleAnswer.hasPrefix("HTTP/1.1 101"))
        try await h.waitForActive(1)
        #expect(Self.timeouts(try await h.stats())["tunnel_idle"] as? Int == 1)
        busy.channel.close(promise: nil)
        try await h.waitForActive(0)
    }
}

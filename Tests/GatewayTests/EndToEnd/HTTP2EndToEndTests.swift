import Foundation
import Testing

/// HTTP/2 with prior knowledge (h2c) on an `[http1, h2c]` listener, driven by curl, nghttp and
/// h2load against a real gateway and real demo backends.
@Suite struct HTTP2EndToEndTests {
    static func config(deploymentLimit: Int? = nil, extra: String = "") -> String {
        var yaml = """
            admin: {listen: {admin}}
            shutdown_timeout: 10s
            listeners:
              - listen: {listen}
                protocols: [http1, h2c]

            """
        yaml += extra
        yaml += "deployments:\n  - name: shop\n"
        if let deploymentLimit { yaml += "    max_requests: \(deploymentLimit)\n" }
        yaml += "    backends: {backends}\n"
        return yaml
    }

    static func url(_ h: GatewayHarness, _ path: String) -> String { "http://127.0.0.1:\(h.port)\(path)" }

    @Test func getAndLargePostOverH2CAndHTTP1OnTheSamePort() async throws {
        let h = try await GatewayHarness(yaml: Self.config())
        let get = try await ExternalTool.run(
            "curl", ["-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", Self.url(h, "/")])
        #expect(get.stdout == ["2 200"], "\(get.output)")
        let http1 = try await ExternalTool.run("curl", ["-sS", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", Self.url(h, "/")])
        #expect(http1.stdout == ["1.1 200"], "\(http1.output)")

        // 3 MiB up and back: many windows' worth, so the upload only finishes if consumed
        // bytes reopen the client's window.
        let upload = h.directory.appendingPathComponent("upload.bin")
        var bytes = [UInt8](repeating: 0, count: 3 << 20)
        for index in bytes.indices { bytes[index] = UInt8(truncatingIfNeeded: index &* 2_654_435_761 >> 13) }
        try Data(bytes).write(to: upload)
        let echoed = h.directory.appendingPathComponent("echoed.bin")
        let post = try await ExternalTool.run(
            "curl",
            ["-sS", "--http2-prior-knowledge", "--data-binary", "@\(upload.path)", "-o", echoed.path, "-w", "%{http_code}", Self.url(h, "/echo")]
        )
        #expect(post.stdout == ["200"], "\(post.output)")
        #expect(try Data(contentsOf: echoed) == Data(bytes))

        let stats = try await h.stats()
        let protocols = stats["protocols"] as? [String: Any] ?? [:]
        #expect((protocols["h2"] as? [String: Any])?["requests"] as? Int == 2)
        #expect((protocols["http1"] as? [String: Any])?["requests"] as? Int == 1)
    }

    @Test func concurrentStreamsOnOneConnectionAreCountedInStats() async throws {
        let h = try await GatewayHarness(yaml: Self.config())
        // One connection, 40 streams at once, each held 3 s by the backend (long enough for a
        // loaded machine's poll to catch them all in flight).
        let load = try ExternalTool.start(
            "h2load", ["-n", "40", "-c", "1", "-m", "40", Self.url(h, "/sleep?ms=3000")])
        let seen = try await h.waitForStats("40 h2 streams in flight") { stats in
            (stats["global"] as? [String: Any])?["active"] as? Int == 40
        }
        #expect((seen["protocols"] as? [String: Any]).flatMap { $0["h2"] as? [String: Any] }?["connections"] as? Int == 1)
        #expect(try await load.waitForExit(timeout: .seconds(20)) == 0)
        try await load.waitForOutputToEnd()
        let output = load.stdoutLines.joined(separator: "\n")
        #expect(output.contains("requests: 40 total, 40 started, 40 done, 40 succeeded, 0 failed, 0 errored"), "\(output)")
        #expect(output.contains("status codes: 40 2xx"), "\(output)")
        _ = try await h.waitForActive(0)
    }

    @Test func limitRejectsStreamsWith503WhileTheOthersOnTheConnectionFinish() async throws {
        let h = try await GatewayHarness(yaml: Self.config(deploymentLimit: 5))
        let run = try await ExternalTool.run(
            "h2load", ["-n", "20", "-c", "1", "-m", "20", Self.url(h, "/sleep?ms=800")], timeout: .seconds(20))
        let output = run.output
        // All 20 on one connection: 5 admitted, 15 refused (h2load counts a 5xx as failed), none errored.
        #expect(output.contains("requests: 20 total, 20 started, 20 done, 5 succeeded, 15 failed, 0 errored"), "\(output)")
        #expect(output.contains("status codes: 5 2xx, 0 3xx, 0 4xx, 15 5xx"), "\(output)")
        let entry = GatewayHarness.entryPoint(try await h.stats(), "default")
        #expect((entry["rejected"] as? [String: Any])?["deployment_limit"] as? Int == 15)

        // The refusal carries retry-after and the reason, on the stream.
        let busy = try ExternalTool.start("h2load", ["-n", "5", "-c", "1", "-m", "5", Self.url(h, "/sleep?ms=3000")])
        _ = try await h.waitForActive(5)
        let refused = try await ExternalTool.run("nghttp", ["-v", Self.url(h, "/")])
        #expect(refused.output.contains(":status: 503"), "\(refused.output)")
        #expect(refused.output.contains("retry-after: 1"), "\(refused.output)")
        #expect(refused.output.contains("x-gateway-reject: deployment_limit"), "\(refused.output)")
        #expect(try await busy.waitForExit(timeout: .seconds(20)) == 0)
    }

    @Test func drainSendsTwoGoAwaysAndLetsTheStreamInFlightFinish() async throws {
        let h = try await GatewayHarness(yaml: Self.config())
        let client = try ExternalTool.start("nghttp", ["-v", Self.url(h, "/sleep?ms=4000")])
        _ = try await h.waitForActive(1)
        let shutdown = try await h.admin(.POST, "/shutdown?timeout=10")
        #expect(shutdown.status.code == 202 || shutdown.status.code == 200)
        #expect(try await client.waitForExit(timeout: .seconds(15)) == 0)
        try await client.waitForOutputToEnd()
        let lines = client.stdoutLines
        let goAways = lines.indices.filter { lines[$0].contains("recv GOAWAY") }.map { lines[$0 + 1] }
        #expect(goAways.count == 2, "\(lines.joined(separator: "\n"))")
        #expect(goAways.first?.contains("last_stream_id=2147483647, error_code=NO_ERROR") == true, "\(client.outputDescription)\n\(h.gateway.outputDescription)")
        // nghttp's first request is stream 13 (it opens idle streams 3..11 for priorities).
        #expect(goAways.last?.contains("last_stream_id=13, error_code=NO_ERROR") == true)
        let firstGoAway = try #require(lines.firstIndex { $0.contains("recv GOAWAY") })
        let pingAck = try #require(lines.firstIndex { $0.contains("send PING frame") && $0.contains("flags=0x01") })
        let lastGoAway = try #require(lines.lastIndex { $0.contains("recv GOAWAY") })
        #expect(firstGoAway < pingAck && pingAck < lastGoAway)
        let status = try #require(lines.firstIndex { $0.contains(":status: 200") })
        #expect(status > lastGoAway, "the stream finished after the final GOAWAY")
        #expect(try await h.gateway.waitForExit(timeout: .seconds(15)) == 0)
    }

    @Test func newStreamsAfterTheDrainStartsGet503AndOthersStillFinish() async throws {
        let h = try await GatewayHarness(yaml: Self.config())
        let slow = try ExternalTool.start("h2load", ["-n", "3", "-c", "1", "-m", "3", Self.url(h, "/sleep?ms=3000")])
        _ = try await h.waitForActive(3)
        _ = try await h.admin(.POST, "/suspend?timeout=10")
        // A new connection during the drain: refused by RequestControl, on its stream.
        let late = try await ExternalTool.run(
            "curl", ["-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_code}", Self.url(h, "/")])
        #expect(late.stdout == ["503"], "\(late.output)")
        #expect(try await slow.waitForExit(timeout: .seconds(20)) == 0)
        try await slow.waitForOutputToEnd()
        #expect(slow.stdoutLines.joined().contains("status codes: 3 2xx"), "\(slow.stdoutLines.joined(separator: "\n"))")
    }

    @Test func streamsStillInFlightAtTheDrainTimeoutAreReset() async throws {
        let h = try await GatewayHarness(yaml: Self.config())
        let client = try ExternalTool.start("nghttp", ["-v", Self.url(h, "/sleep?ms=20000")])
        _ = try await h.waitForActive(1)
        _ = try await h.admin(.POST, "/shutdown?timeout=1")
        #expect(try await h.gateway.waitForExit(timeout: .seconds(15)) == 0)
        _ = try? await client.waitForExit(timeout: .seconds(10))
        try await client.waitForOutputToEnd()
        let output = client.stdoutLines.joined(separator: "\n")
        #expect(output.contains("recv RST_STREAM frame <length=4, flags=0x00, stream_id=13>"), "\(output)")
        #expect(output.contains("(error_code=CANCEL(0x08))"), "\(output)")
        #expect(!output.contains(":status: 200"))
    }

    /// Python's h2 sends an upload with request trailers; the demo backend's /echo returns them
    /// as response trailers, through the gateway both ways. Without a content-length, and with
    /// one plus a `trailer` field announcing them (the backend hop must then be chunked, the only
    /// HTTP/1.1 framing that carries trailers).
    @Test(arguments: [false, true]) func trailersPassBothWays(declaredLength: Bool) async throws {
        let h = try await GatewayHarness(yaml: Self.config())
        let script = """
            import socket, sys, h2.connection, h2.config, h2.events
            s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
            c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
            c.initiate_connection()
            sized = [("content-length", "14"), ("trailer", "x-checksum")] if sys.argv[2] == "sized" else []
            c.send_headers(1, [(":method", "POST"), (":path", "/echo"), (":scheme", "http"), (":authority", "x")] + sized)
            c.send_data(1, b"hello trailers")
            c.send_headers(1, [("x-checksum", "abc123")], end_stream=True)
            s.sendall(c.data_to_send())
            body, trailers, status, done = b"", None, None, False
            while not done:
                data = s.recv(65536)
                if not data: break
                for e in c.receive_data(data):
                    if isinstance(e, h2.events.ResponseReceived): status = dict(e.headers)[":status"]
                    if isinstance(e, h2.events.DataReceived):
                        body += e.data
                        c.acknowledge_received_data(e.flow_controlled_length, 1)
                    if isinstance(e, h2.events.TrailersReceived): trailers = dict(e.headers)
                    if isinstance(e, h2.events.StreamEnded): done = True
                s.sendall(c.data_to_send())
            print(status, body.decode(), trailers)
            """
        let path = h.directory.appendingPathComponent("trailers.py").path
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        let run = try await ExternalTool.run("python3", [path, String(h.port), declaredLength ? "sized" : "unsized"])
        #expect(run.stdout == ["200 hello trailers {'x-checksum': 'abc123'}"], "\(run.output)")
    }
}

import Foundation
import Testing

/// Misbehaving HTTP/2 clients (driven frame by frame by `Fixtures/h2peer.py`, on Python's `h2`)
/// are cut off with GOAWAY ENHANCE_YOUR_CALM while a normal client on another connection keeps
/// getting its 200s. One at a time: each floods as fast as it can, and the rest of the suite runs
/// beside it.
@Suite(.serialized) struct HTTP2AbuseEndToEndTests {
    static let peer = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/h2peer.py").path

    /// Runs one h2peer subcommand and returns its JSON report.
    static func peer(_ arguments: [String], port: Int, timeout: Int = 10) async throws -> [String: Any] {
        let run = try await ExternalTool.run(
            "python3", [Self.peer] + arguments + ["--port", String(port), "--timeout", String(timeout)],
            timeout: .seconds(timeout + 15))
        guard let line = run.stdout.last(where: { $0.hasPrefix("{") }),
            let json = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        else {
            throw TestSupportError("h2peer printed no report:\n\(run.output)")
        }
        guard json["ok"] as? Bool == true else { throw TestSupportError("h2peer could not run: \(line)\n\(run.output)") }
        return json
    }

    static func goAwayError(_ report: [String: Any]) -> String? {
        (report["goaway"] as? [String: Any])?["error_name"] as? String
    }

    /// Abuse on one connection while h2load, on its own connection, sends 200 requests.
    func abuse(_ arguments: [String], extra: String = "") async throws -> (report: [String: Any], normal: String, h: GatewayHarness) {
        let h = try await GatewayHarness(yaml: HTTP2EndToEndTests.config(extra: extra))
        let normal = try ExternalTool.start(
            "h2load", ["-n", "200", "-c", "1", "-m", "1", "http://127.0.0.1:\(h.port)/sleep?ms=5"])
        let report = try await Self.peer(arguments, port: h.port)
        #expect(try await normal.waitForExit(timeout: .seconds(30)) == 0)
        try await normal.waitForOutputToEnd()
        return (report, normal.stdoutLines.joined(separator: "\n"), h)
    }

    func expectCutOffWhileOthersServed(_ run: (report: [String: Any], normal: String, h: GatewayHarness)) async throws {
        #expect(Self.goAwayError(run.report) == "ENHANCE_YOUR_CALM", "\(run.report)")
        #expect(run.report["connection_closed"] as? Bool == true, "\(run.report)")
        #expect(run.normal.contains("requests: 200 total, 200 started, 200 done, 200 succeeded, 0 failed"), "\(run.normal)")
        let stats = try await run.h.stats()
        let h2 = (stats["protocols"] as? [String: Any])?["h2"] as? [String: Any]
        #expect(h2?["abusive_connections_closed"] as? Int == 1)
    }

    @Test func rapidResetClosesTheAbuser() async throws {
        let run = try await abuse(["rapid-reset", "--streams", "3000", "--path", "/sleep?ms=100"])
        try await expectCutOffWhileOthersServed(run)
        // Well under the 3000 opened: the rest never reached a backend.
        let backendTotal = GatewayHarness.entryPoint(try await run.h.stats(), "default")["total"] as? Int ?? 0
        #expect(backendTotal < 200 + 600, "entry point total \(backendTotal)")
    }

    @Test func continuationFloodClosesTheAbuser() async throws {
        try await expectCutOffWhileOthersServed(try await abuse(["continuation-flood", "--frames", "2000"]))
    }

    @Test func pingFloodClosesTheAbuser() async throws {
        try await expectCutOffWhileOthersServed(try await abuse(["ping-flood", "--count", "3000"]))
    }

    @Test func settingsFloodClosesTheAbuser() async throws {
        try await expectCutOffWhileOthersServed(try await abuse(["settings-flood", "--count", "3000"]))
    }

    @Test func zeroWindowStallIsCutOffAfterTheStallTimeout() async throws {
        let run = try await abuse(
            ["zero-window", "--streams", "3", "--path", "/bytes?n=200000"], extra: "http2: {stall_timeout: 1s}\n")
        try await expectCutOffWhileOthersServed(run)
        let seconds = run.report["seconds_until_close"] as? Double ?? 0
        // Stall noticed by a once-a-second check: closed between 1 and about 3 seconds in.
        #expect(seconds >= 1 && seconds < 5, "\(run.report)")
    }

    @Test func concurrentStreamLimitIsAnnouncedAndKept() async throws {
        let h = try await GatewayHarness(yaml: HTTP2EndToEndTests.config(extra: "http2: {max_concurrent_streams: 10}\n"))
        let report = try await Self.peer(["streams", "--count", "30", "--path", "/sleep?ms=100"], port: h.port)
        #expect((report["server_settings"] as? [String: Any])?["MAX_CONCURRENT_STREAMS"] as? Int == 10, "\(report)")
        #expect((report["max_concurrent"] as? Int ?? 99) <= 10)
        #expect((report["statuses"] as? [String: Any])?["200"] as? Int == 30, "\(report)")
    }

    @Test func streamsEchoTheirBodiesAndRefusedStreamsCarryRetryAfter() async throws {
        let h = try await GatewayHarness(yaml: HTTP2EndToEndTests.config(deploymentLimit: 4))
        let echo = try await Self.peer(
            ["streams", "--count", "4", "--method", "POST", "--body-bytes", "300000", "--path", "/echo", "--expect-echo"], port: h.port)
        #expect(echo["echo_ok"] as? Bool == true, "\(echo)")
        let mixed = try await Self.peer(["streams", "--count", "12", "--path", "/sleep?ms=500"], port: h.port)
        let statuses = mixed["statuses"] as? [String: Any] ?? [:]
        #expect(statuses["200"] as? Int == 4 && statuses["503"] as? Int == 8, "\(mixed)")
        #expect((mixed["retry_after"] as? [Any])?.count == 8, "\(mixed)")
    }

    @Test func oversizedHeaderListGets431OnItsStream() async throws {
        let h = try await GatewayHarness(yaml: HTTP2EndToEndTests.config(extra: "limits: {max_header_bytes: 4096}\n"))
        let big = String(repeating: "x", count: 8000)
        let run = try await ExternalTool.run(
            "curl", ["-sS", "--http2-prior-knowledge", "-H", "x-big: \(big)", "-o", "/dev/null", "-w", "%{http_code}",
                     "http://127.0.0.1:\(h.port)/"])
        #expect(run.stdout == ["431"], "\(run.output)")
    }

    /// An upload answered before it is complete (here 413 at the HEADERS, for a declared length
    /// over the limit) is stopped with RST_STREAM(NO_ERROR) after the response, not left to
    /// trickle on into a discard (RFC 9113 8.1). The connection stays usable.
    @Test func aResponseBeforeTheUploadEndsIsFollowedByResetNoError() async throws {
        let h = try await GatewayHarness(yaml: HTTP2EndToEndTests.config(extra: "limits: {max_body_bytes: 1000}\n"))
        let report = try await Self.peer(
            ["slow-upload", "--path", "/echo", "--body-bytes", "200000", "--chunk-bytes", "1000",
             "--interval-ms", "50"], port: h.port)
        #expect(report["status"] as? Int == 413, "\(report)")
        let resets = report["rst_streams"] as? [[String: Any]] ?? []
        #expect(resets.count == 1 && resets.first?["error_name"] as? String == "NO_ERROR", "\(report)")
        #expect((report["body_bytes_sent"] as? Int ?? .max) < 200000, "\(report)")
        #expect(report["connection_closed"] as? Bool == false, "\(report)")
    }

    /// A client that opens every window wide and then stops reading its socket: the gateway's
    /// socket fills, its writes stop, and after `stall_timeout` the connection is cut off and its
    /// request stops counting, while the client still holds the connection open.
    @Test func aClientThatStopsReadingItsSocketIsCutOffAndStopsCounting() async throws {
        let h = try await GatewayHarness(yaml: HTTP2EndToEndTests.config(extra: "http2: {stall_timeout: 1s}\n"))
        let script = """
            import socket, sys, time
            import h2.config, h2.connection, h2.settings
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", int(sys.argv[1])))
            c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
            c.initiate_connection()
            big = 2**31 - 1
            c.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: big})
            c.increment_flow_control_window(big - 65535)
            c.send_headers(1, [(":method", "GET"), (":path", "/bytes?n=1000000000"), (":scheme", "http"),
                               (":authority", "x")], end_stream=True)
            s.sendall(c.data_to_send())
            print("ready", flush=True)
            time.sleep(30)  # never reads; the test kills it long before
            """
        let path = h.directory.appendingPathComponent("nonreader.py").path
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        let client = try ExternalTool.start("python3", [path, String(h.port)])
        defer { client.killAndReap() }
        _ = try await client.waitForOutput(containing: "ready", timeout: .seconds(20))
        try await h.waitForActive(1)
        // Both in one stats document: the count goes up just before the streams are aborted.
        try await h.waitForStats("the non-reading connection cut off and its request not counted") { stats in
            let h2 = (stats["protocols"] as? [String: Any])?["h2"] as? [String: Any]
            return h2?["abusive_connections_closed"] as? Int == 1
                && (stats["global"] as? [String: Any])?["active"] as? Int == 0
        }
        #expect(h.gateway.stderrLines.contains { $0.contains("not reading its socket") })
        #expect(try await h.get("/").status == .ok)
    }

    /// Uploads queued while the backend connection is still being made, then answered by the
    /// gateway (the connect times out: the backend's accept queue is full, its SYNs dropped),
    /// still free their bytes in the connection's window. 16 streams give a 1 MiB connection
    /// window; two rounds of 16 x 60 KB never consumed would close it for good, and the 300 KB
    /// upload that follows on the same connection to a working deployment could not finish.
    @Test func uploadsQueuedForABackendThatNeverConnectsStillReopenTheWindow() async throws {
        let stalled = try ExternalTool.start(
            "python3",
            [
                "-c",
                """
                import socket, time
                s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(0)
                held = socket.create_connection(s.getsockname())
                print("port", s.getsockname()[1], flush=True)
                time.sleep(60)
                """,
            ])
        let line = try await stalled.waitForOutput(containing: "port ", timeout: .seconds(10))
        let stalledPort = try GatewayHarness.port(in: line, after: "port ")
        let yaml = """
            admin: {listen: {admin}}
            http2: {max_concurrent_streams: 16}
            timeouts: {connect: 500ms}
            listeners:
              - listen: {listen}
                protocols: [http1, h2c]
            deployments:
              - name: stalled
                path_prefix: /stalled
                backends: [127.0.0.1:\(stalledPort)]
              - name: shop
                backends: {backends}
            """
        let h = try await GatewayHarness(yaml: yaml)
        let script = """
            import socket, sys, h2.connection, h2.config, h2.events
            s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
            c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
            c.initiate_connection(); s.sendall(c.data_to_send())
            status, body, ended, pending = {}, {}, set(), {}
            def post(sid, path, size):
                c.send_headers(sid, [(":method", "POST"), (":path", path), (":scheme", "http"), (":authority", "x")])
                pending[sid] = bytes([sid % 251]) * size
                body[sid] = b""
            def pump():
                for sid, data in list(pending.items()):
                    if sid in ended: pending.pop(sid); continue
                    n = min(len(data), c.local_flow_control_window(sid), c.max_outbound_frame_size)
                    if n > 0:
                        c.send_data(sid, data[:n], end_stream=(n == len(data))); pending[sid] = data[n:]
                        if n == len(data): pending.pop(sid)
                s.sendall(c.data_to_send())
                for e in c.receive_data(s.recv(65536)):
                    if isinstance(e, h2.events.ResponseReceived): status[e.stream_id] = dict(e.headers)[":status"]
                    if isinstance(e, h2.events.DataReceived):
                        body[e.stream_id] += e.data; c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
                    if isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset)): ended.add(e.stream_id)
                s.sendall(c.data_to_send())
            first = []
            for batch in range(2):
                ids = [1 + 2 * (16 * batch + i) for i in range(16)]
                for sid in ids: post(sid, "/stalled/upload", 60000)
                while not all(sid in ended for sid in ids): pump()
                first += ids
            post(65, "/echo", 300000)
            while 65 not in ended: pump()
            print(sorted(set(status[sid] for sid in first)), status.get(65), len(body[65]))
            """
        let path = h.directory.appendingPathComponent("window.py").path
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        let run = try await ExternalTool.run("python3", [path, String(h.port)], timeout: .seconds(20))
        #expect(run.stdout == ["['502'] 200 300000"], "\(run.output)")
    }
}

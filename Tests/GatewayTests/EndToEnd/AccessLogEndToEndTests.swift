import Foundation
import NIOCore
import Testing

/// The access log and request ids, through a real gateway: the line of an HTTP/1.1 request, an
/// HTTP/2 stream, a rejection and a WebSocket tunnel, and the id as the backend and the client see it.
@Suite(.timeLimit(.minutes(1)))
struct AccessLogEndToEndTests {
    static func config(
        format: String = "json", globalLimit: Int? = nil, h2c: Bool = false, pathPrefix: String = "/", threads: Int? = nil
    ) -> String {
        var yaml = "admin: {listen: {admin}}\nshutdown_timeout: 10s\n"
        if let threads { yaml += "threads: \(threads)\n" }
        yaml += h2c ? "listeners:\n  - listen: {listen}\n    protocols: [http1, h2c]\n" : "listen: {listen}\n"
        yaml += "access_log: {path: access.log, format: \(format)}\n"
        if let globalLimit { yaml += "limits: {max_requests: \(globalLimit)}\n" }
        yaml += "deployments:\n  - name: shop\n    path_prefix: \(pathPrefix)\n    backends: {backends}\n"
        return yaml
    }

    static func logPath(_ h: GatewayHarness, _ name: String = "access.log") -> String {
        h.directory.appendingPathComponent(name).path
    }

    static func lines(_ path: String) -> [String] {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    /// Polls the log file until a JSON line with `requestID` is there (bounded); returns it.
    static func waitForLine(_ h: GatewayHarness, requestID: String, file: String = "access.log") async throws -> [String: Any] {
        let path = logPath(h, file)
        let found = try await h.poll(timeout: .seconds(10), "an access-log line for \(requestID) in \(path)", fetch: {
            lines(path).compactMap { line in
                (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
            }.first { $0["request_id"] as? String == requestID }
        }, until: { $0 != nil })
        return found!
    }

    @Test func anHTTP1RequestKeepsItsIdWhichTheBackendSeesAndTheLineHasEveryField() async throws {
        let h = try await GatewayHarness(yaml: Self.config())
        let response = try await h.get("/headers", headers: [("X-Request-Id", "e2e-kept:1")])
        #expect(response.status == .ok)
        #expect(response.headers["x-request-id"] == ["e2e-kept:1"])
        let seen = GatewayHarness.json(response)
        #expect(seen["x-request-id"] as? [String] == ["e2e-kept:1"], "\(seen)")

        let line = try await Self.waitForLine(h, requestID: "e2e-kept:1")
        #expect(line["method"] as? String == "GET")
        #expect(line["path"] as? String == "/headers")
        #expect(line["protocol"] as? String == "HTTP/1.1")
        #expect(line["deployment"] as? String == "shop")
        #expect(line["entry_point"] as? String == "default")
        #expect(line["backend"] as? String == "127.0.0.1:\(h.backendPorts[0])")
        #expect(line["status"] as? Int == 200)
        #expect(line["bytes_in"] as? Int == 0)
        #expect(line["bytes_out"] as? Int == response.body.count)
        #expect((line["duration_ms"] as? Double).map { $0 >= 0 } == true)
        #expect(line["reject_reason"] is NSNull)
        #expect((line["client"] as? String)?.hasPrefix("127.0.0.1:") == true)
        let time = try #require(line["time"] as? String)
        #expect(time.count == 24 && time.hasSuffix("Z") && time.dropFirst(19).first == ".", "\(time)")
        // /stats tells whether the writer has kept up.
        let stats = try await h.stats()
        #expect((stats["access_log"] as? [String: Any])?["dropped_lines"] as? Int == 0, "\(stats["access_log"] ?? "none")")
    }

    @Test func aMalformedOrMissingIdIsReplacedAndTheSameNewIdGoesBothWays() async throws {
        let h = try await GatewayHarness(yaml: Self.config())
        for given in [[("X-Request-Id", "not well formed")], []] {
            let response = try await h.get("/headers", headers: given)
            let id = try #require(response.headers["x-request-id"].first)
            #expect(id != "not well formed")
            #expect(id.utf8.count == 29 && !id.contains(" "), "\(id)")
            #expect(GatewayHarness.json(response)["x-request-id"] as? [String] == [id])
            let line = try await Self.waitForLine(h, requestID: id)
            #expect(line["status"] as? Int == 200)
        }
        let first = try await h.get("/")
        let second = try await h.get("/")
        #expect(first.headers["x-request-id"] != second.headers["x-request-id"])
    }

    @Test func anHTTP2StreamHasItsLineAndItsIdComesBack() async throws {
        let h = try await GatewayHarness(yaml: Self.config(h2c: true))
        let curl = try await ExternalTool.run(
            "curl",
            ["-sS", "--http2-prior-knowledge", "-D", "-", "-o", "/dev/null", "-H", "x-request-id: e2e-h2",
             "--data-binary", "hello", "http://127.0.0.1:\(h.port)/echo"])
        #expect(curl.stdout.contains { $0.hasPrefix("HTTP/2 200") }, "\(curl.output)")
        #expect(curl.stdout.contains { $0.lowercased().hasPrefix("x-request-id: e2e-h2") }, "\(curl.output)")
        let line = try await Self.waitForLine(h, requestID: "e2e-h2")
        #expect(line["protocol"] as? String == "HTTP/2")
        #expect(line["method"] as? String == "POST")
        #expect(line["path"] as? String == "/echo")
        #expect(line["status"] as? Int == 200)
        #expect(line["bytes_in"] as? Int == 5)
        #expect(line["bytes_out"] as? Int == 5)
        #expect(line["backend"] as? String == "127.0.0.1:\(h.backendPorts[0])")
    }

    @Test func aRejectionHasItsReasonNoBackendAndAnId() async throws {
        let h = try await GatewayHarness(yaml: Self.config(globalLimit: 1))
        // Held far longer than the test needs (a loaded machine can take seconds between two
        // requests); it ends with the gateway, when the harness goes (the task holds no harness).
        let port = h.port
        let held = Task { try await TestHTTPClient.get(port: port, path: "/sleep?ms=60000") }
        defer { held.cancel() }
        try await h.waitForActive(1)
        let refused = try await h.get("/", headers: [("X-Request-Id", "e2e-refused")])
        #expect(refused.status == .serviceUnavailable)
        #expect(refused.headers["x-request-id"] == ["e2e-refused"])
        let line = try await Self.waitForLine(h, requestID: "e2e-refused")
        #expect(line["status"] as? Int == 503)
        #expect(line["reject_reason"] as? String == "global_limit")
        #expect(line["backend"] is NSNull)
        #expect(line["deployment"] as? String == "shop")
        #expect(line["bytes_out"] as? Int == refused.body.count)
    }

    @Test func aWebSocketTunnelHasOneLineWithBytesBothWaysWhenItCloses() async throws {
        // One event loop: its lines go out in the order they were made, so a later request's line
        // in the file shows every earlier line of that loop was written too.
        let h = try await GatewayHarness(yaml: Self.config(threads: 1))
        let frame = UpgradeEndToEndTests.textFrame("hello tunnel")
        let handshake = UpgradeEndToEndTests.handshake.replacingOccurrences(
            of: "\r\n\r\n", with: "\r\nX-Request-Id: e2e-ws\r\n\r\n")
        let connection = try await StalledRequestEndToEndTests.connect(port: h.port)
        try await connection.executeThenClose { inbound, outbound in
            var reader = ByteReader(inbound.makeAsyncIterator())
            try await outbound.write(ByteBuffer(string: handshake))
            let head = try await reader.readUntil("\r\n\r\n")
            #expect(head.hasPrefix("HTTP/1.1 101"))
            #expect(head.lowercased().contains("x-request-id: e2e-ws"), "\(head)")
            try await outbound.write(ByteBuffer(bytes: frame))
            let echo = try await reader.read(count: 2 + 12)
            #expect(Array(echo[2...]) == Array("hello tunnel".utf8))
            // No line while the tunnel is open: it is one request, logged when it ends. A request
            // made after the echo has its line written, so the tunnel's would be there by now.
            try await h.waitForActive(1)
            _ = try await h.get("/", headers: [("X-Request-Id", "e2e-marker")])
            _ = try await Self.waitForLine(h, requestID: "e2e-marker")
            #expect(!Self.lines(Self.logPath(h)).contains { $0.contains("e2e-ws") })
        }
        // The gateway has seen the tunnel end (its request completed) before its line is looked for.
        try await h.waitForActive(0)
        let line = try await Self.waitForLine(h, requestID: "e2e-ws")
        #expect(line["status"] as? Int == 101)
        #expect(line["path"] as? String == "/ws")
        #expect(line["bytes_in"] as? Int == frame.count)
        #expect(line["bytes_out"] as? Int == 14)
        #expect(line["backend"] as? String == "127.0.0.1:\(h.backendPorts[0])")
    }

    @Test func combinedFormatAndTheGatewaysOwn404() async throws {
        let h = try await GatewayHarness(yaml: Self.config(format: "combined", pathPrefix: "/shop/"))
        let missing = try await h.get("/nowhere", headers: [("X-Request-Id", "e2e-404"), ("User-Agent", "tester/1")])
        #expect(missing.status == .notFound)
        #expect(missing.headers["x-request-id"] == ["e2e-404"])
        let path = Self.logPath(h)
        let line = try await h.poll(timeout: .seconds(10), "a combined line", fetch: {
            Self.lines(path).first { $0.contains("e2e-404") }
        }, until: { $0 != nil })!
        let pattern = #"^127\.0\.0\.1 - - \[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000\] "GET /nowhere HTTP/1\.1" 404 \d+ "-" "tester/1" e2e-404 \d+\.\d{3}$"#
        #expect(line.range(of: pattern, options: .regularExpression) != nil, "\(line)")
    }

    @Test func anUnparsableRequestGetsAnIdAndALineWithoutMethodOrPath() async throws {
        let h = try await GatewayHarness(yaml: Self.config())
        let answer = try await TestHTTPClient.raw(port: h.port, "GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n")
        #expect(answer.hasPrefix("HTTP/1.1 400"), "\(answer)")
        let id = try #require(
            answer.split(separator: "\r\n").first { $0.lowercased().hasPrefix("x-request-id: ") }.map { String($0.dropFirst(14)) },
            "\(answer)")
        let line = try await Self.waitForLine(h, requestID: id)
        #expect(line["status"] as? Int == 400)
        #expect(line["method"] as? String == "-")
        #expect(line["path"] as? String == "-")
        #expect(line["deployment"] is NSNull)
    }

    /// A request whose head was read but whose chunked body is broken is one line, 400, under
    /// the id it came with, and the 400 carries that id (once it was a 499 under that id plus a
    /// second line and answer under a new one).
    @Test func aBrokenBodyIsOneLineUnderTheRequestsOwnId() async throws {
        let h = try await GatewayHarness(yaml: Self.config())
        let answer = try await TestHTTPClient.raw(
            port: h.port,
            "POST /echo HTTP/1.1\r\nHost: x\r\nX-Request-Id: e2e-broken-body\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")
        #expect(answer.hasPrefix("HTTP/1.1 400"), "\(answer)")
        #expect(answer.lowercased().contains("x-request-id: e2e-broken-body\r\n"), "\(answer)")
        let line = try await Self.waitForLine(h, requestID: "e2e-broken-body")
        #expect(line["status"] as? Int == 400)
        #expect(line["method"] as? String == "POST")
        // A later request's line shows the writer has caught up: still only one for the broken one.
        _ = try await h.get("/", headers: [("X-Request-Id", "e2e-after-broken")])
        _ = try await Self.waitForLine(h, requestID: "e2e-after-broken")
        let lines = Self.lines(Self.logPath(h))
        #expect(lines.filter { $0.contains("e2e-broken-body") }.count == 1, "\(lines)")
        #expect(!lines.contains { $0.contains("\"status\":499") }, "\(lines)")
    }

    @Test func aReloadReopensTheFileSoLogrotateCanMoveIt() async throws {
        let h = try await GatewayHarness(yaml: Self.config())
        _ = try await h.get("/", headers: [("X-Request-Id", "e2e-before")])
        _ = try await Self.waitForLine(h, requestID: "e2e-before")
        try FileManager.default.moveItem(atPath: Self.logPath(h), toPath: Self.logPath(h, "access.log.1"))
        let reload = try await h.admin(.POST, "/reload")
        #expect(reload.status == .ok, "\(reload.bodyString)")
        _ = try await h.get("/", headers: [("X-Request-Id", "e2e-after")])
        _ = try await Self.waitForLine(h, requestID: "e2e-after")
        #expect(!Self.lines(Self.logPath(h, "access.log.1")).contains { $0.contains("e2e-after") })
    }

    @Test func anUnwritablePathStopsTheStartWithItsName() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gateway-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let config = directory.appendingPathComponent("gateway.yaml")
        try """
            listen: 127.0.0.1:0
            admin: {listen: 127.0.0.1:0}
            access_log: {path: missing-dir/access.log}
            deployments:
              - name: shop
                backends: [127.0.0.1:9]
            """.write(to: config, atomically: true, encoding: .utf8)
        let gateway = try ChildProcess.gateway(["run", "--config", config.path])
        #expect(try await gateway.waitForExit(timeout: .seconds(20)) != 0)
        let output = gateway.outputDescription
        #expect(output.contains("cannot open the access log \(directory.path)/missing-dir/access.log"), "\(output)")
    }
}

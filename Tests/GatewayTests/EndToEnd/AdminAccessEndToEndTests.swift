import Foundation
import Glibc
import Testing

@testable import Gateway

/// The admin side as operators meet it: tokens on TCP, peer credentials on the socket, the CLI's
/// ways of giving a token, the audit lines in the gateway's log, and `/events`.
@Suite(.timeLimit(.minutes(2)))
struct AdminAccessEndToEndTests {
    /// A short directory of its own (a socket path has at most 107 bytes), readable by others.
    static func socketDirectory() throws -> URL {
        let directory = URL(fileURLWithPath: "/tmp").appendingPathComponent("gw-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        return directory
    }

    /// `curl` on the socket, optionally as `nobody` (with group root, so the 0660 socket lets it
    /// connect): returns the status and the body.
    static func curlSocket(_ socket: String, _ method: String, _ path: String, asNobody: Bool = false) async throws -> (Int, String) {
        var command = ["/usr/bin/curl", "-s", "-o", "-", "-w", "\n%{http_code}", "--unix-socket", socket, "-X", method, "http://localhost\(path)"]
        if asNobody { command = ["/usr/bin/setpriv", "--reuid=65534", "--regid=0", "--clear-groups"] + command }
        let child = try ChildProcess(executable: command[0], arguments: Array(command.dropFirst()))
        _ = try await child.waitForExit(timeout: .seconds(10))
        try await child.waitForOutputToEnd()
        let lines = child.stdoutLines
        return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
    }

    @Test func socketPeersAreKnownByTheKernelAndAReloadMakesAnotherUserAnAdmin() async throws {
        let directory = try Self.socketDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let socket = directory.appendingPathComponent("admin.sock").path
        let yaml = GatewayHarness.simpleConfig().replacingOccurrences(of: "  listen: {admin}\n", with: "  listen: {admin}\n  socket: \(socket)\n")
        let h = try await GatewayHarness(backends: 1, yaml: yaml)
        var info = stat()
        #expect(stat(socket, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o660)

        // The gateway's own user is an admin on the socket, with no token at all.
        #expect(try await Self.curlSocket(socket, "GET", "/processes").0 == 200)
        #expect(try await Self.curlSocket(socket, "POST", "/shutdown?timeout=bad").0 == 400)
        // The CLI finds the socket through the configuration, and needs no token there.
        let status = try ChildProcess.gateway(
            ["status", "--config", h.directory.appendingPathComponent("gateway.yaml").path], environment: ["GATEWAY_TOKEN": "", "GATEWAY_ADMIN": ""])
        #expect(try await status.waitForExit() == 0, "\(status.outputDescription)")
        // Nobody else can reach the TCP listener without a token.
        #expect(try await h.admin(.GET, "/stats", token: nil).status.code == 401)

        guard getuid() == 0 else { return }  // switching users needs root (CI runs as root)
        #expect(try await Self.curlSocket(socket, "GET", "/stats", asNobody: true).0 == 200)
        let refused = try await Self.curlSocket(socket, "POST", "/resume?deployment=shop", asNobody: true)
        #expect(refused.0 == 403)
        #expect(refused.1.contains("this needs level operator; nobody has viewer"))

        let config = h.directory.appendingPathComponent("gateway.yaml")
        let text = try String(contentsOf: config, encoding: .utf8)
        try text.replacingOccurrences(of: "  socket: \(socket)\n", with: "  socket: \(socket)\n  socket_admins: [nobody]\n")
            .write(to: config, atomically: true, encoding: .utf8)
        let reload = try await h.adminJSON(.POST, "/reload")
        #expect(reload.status == 200, "\(reload.json)")
        #expect(try await Self.curlSocket(socket, "POST", "/resume?deployment=shop", asNobody: true).0 == 200)

        // Both calls of nobody's are in the audit log, by name and credential.
        // Keys are sorted: this is the only resume that succeeded, nobody's.
        try await h.gateway.waitForOutput(containing: "\"path\":\"/resume\",\"result\":\"ok\"", in: .stderr)
        let nobody = h.gateway.stderrLines.filter { $0.contains("\"user\":\"nobody\"") && $0.contains("\"status\":200") }
        #expect(nobody.count == 1 && nobody[0].contains("\"credential\":\"socket\"") && nobody[0].contains("\"path\":\"/resume\""), "\(nobody)")
        #expect(h.gateway.stderrLines.contains { $0.contains("\"user\":\"nobody\"") && $0.contains("\"status\":403") })

        // A keeper that exits takes its socket file with it.
        h.gateway.terminate(signal: SIGTERM)
        #expect(try await h.gateway.waitForExit(timeout: .seconds(20)) == 0)
        #expect(!FileManager.default.fileExists(atPath: socket))
    }

    @Test func adminTokenMakesATokenWhoseHashTheGatewayAcceptsAndTheCLITakesItThreeWays() async throws {
        let made = try ChildProcess.gateway(["admin-token", "--name", "ci", "--level", "viewer"])
        #expect(try await made.waitForExit() == 0)
        try await made.waitForOutputToEnd()
        let token = try #require(made.stdoutLines.first)
        #expect(token.hasPrefix("gw_"))
        let hashLine = try #require(made.stdoutLines.first { $0.contains("token_sha256:") })
        let hash = try #require(hashLine.split(separator: " ").last.map(String.init))
        #expect(hash == TokenDigest(of: token).hex)
        #expect(!made.stdoutLines.dropFirst().contains { $0.contains(token) }, "the token is printed once")

        let yaml = GatewayHarness.simpleConfig().replacingOccurrences(
            of: "  listen: {admin}\n",
            with: """
                  listen: {admin}
                  users:
                    - {name: ci, token_sha256: \(hash), level: viewer}
                    - {name: \(TestAdmin.userName), token_sha256: \(TokenDigest(of: TestAdmin.token).hex), level: admin}

                """)
        let h = try await GatewayHarness(backends: 1, yaml: yaml)
        let admin = "http://127.0.0.1:\(h.adminPort)"
        let tokenFile = h.directory.appendingPathComponent("token")
        try (token + "\n").write(to: tokenFile, atomically: true, encoding: .utf8)

        // --token-file, $GATEWAY_TOKEN and --token.
        let byFile = try ChildProcess.gateway(["status", "--admin", admin, "--token-file", tokenFile.path], environment: ["GATEWAY_TOKEN": ""])
        #expect(try await byFile.waitForExit() == 0, "\(byFile.outputDescription)")
        let byEnvironment = try ChildProcess.gateway(["suspend", "shop", "--admin", admin], environment: ["GATEWAY_TOKEN": token])
        #expect(try await byEnvironment.waitForExit() == 1)
        try await byEnvironment.waitForOutputToEnd()
        #expect(byEnvironment.stderrLines.contains { $0.contains("this needs level operator; ci has viewer") }, "\(byEnvironment.outputDescription)")
        let byOption = try ChildProcess.gateway(["status", "--admin", admin, "--token", token], environment: ["GATEWAY_TOKEN": ""])
        #expect(try await byOption.waitForExit() == 0)
        let without = try ChildProcess.gateway(["status", "--admin", admin], environment: ["GATEWAY_TOKEN": ""])
        #expect(try await without.waitForExit() == 1)
        try await without.waitForOutputToEnd()
        #expect(without.stderrLines.contains { $0.contains("needs a bearer token") }, "\(without.outputDescription)")
    }

    @Test func eventsOfARollArriveInOrder() async throws {
        let h = try await GatewayHarness(backends: 0, yaml: GatewayHarness.supervisedConfig(instances: 2))
        try await h.waitForReady(2)
        let events = try ChildProcess.gateway(["events", "--json", "--admin", "http://127.0.0.1:\(h.adminPort)"])
        defer { events.killAndReap() }
        // The worker's start is among the kept events, so this line means the stream is open.
        try await events.waitForOutput(containing: "\"type\":\"gateway\"", in: .stdout)
        let roll = try await h.adminJSON(.POST, "/deployments/shop/restart")
        #expect(roll.status == 200, "\(roll.json)")
        try await events.waitForOutput(containing: "rolling restart of shop finished", in: .stdout)
        try await events.waitForOutput(containing: "\"type\":\"audit\"", in: .stdout)

        let parsed = events.stdoutLines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let seqs = parsed.compactMap { $0["seq"] as? Int }
        #expect(seqs == seqs.sorted() && Set(seqs).count == seqs.count, "in order, each once: \(seqs)")
        func index(_ condition: ([String: Any]) -> Bool) -> Int? { parsed.firstIndex(where: condition) }
        let started = try #require(index { $0["type"] as? String == "roll" && $0["step"] as? String == "started" })
        let first = try #require(index { $0["type"] as? String == "roll" && $0["instance"] as? String == "shop#1" })
        let second = try #require(index { $0["type"] as? String == "roll" && $0["instance"] as? String == "shop#2" })
        let finished = try #require(index { $0["type"] as? String == "roll" && $0["step"] as? String == "finished" })
        #expect(started < first && first < second && second < finished)
        // Between the start and the first step, shop#1 was stopped (with its reason) and its
        // replacement became ready.
        let firstStates = parsed[started..<first].filter { $0["type"] as? String == "instance" && $0["instance"] as? String == "shop#1" }
        #expect(firstStates.contains { $0["to"] as? String == "STOPPING" && !($0["reason"] as? String ?? "").isEmpty }, "\(firstStates)")
        #expect(firstStates.contains { $0["to"] as? String == "READY" }, "\(firstStates)")
        #expect(parsed[first]["old_pid"] as? Int != parsed[first]["new_pid"] as? Int)
        let audit = try #require(parsed.last { $0["type"] as? String == "audit" })
        #expect(audit["user"] as? String == TestAdmin.userName)
        #expect(audit["path"] as? String == "/deployments/shop/restart")
        #expect(audit["status"] as? Int == 200)
    }

    @Test func aBrowserSessionOutlivesAnUpgrade() async throws {
        let h = try await GatewayHarness(backends: 1, yaml: GatewayHarness.simpleConfig())
        let signIn = try await TestHTTPClient.withConnection(port: h.adminPort) { client in
            try await client.request(
                .POST, "/session",
                headers: [("content-type", "application/x-www-form-urlencoded"), ("origin", "http://127.0.0.1:\(h.adminPort)")],
                body: Array("token=\(TestAdmin.token)".utf8))
        }
        #expect(signIn.status.code == 303)
        let cookie = try #require(signIn.headers["set-cookie"].first?.split(separator: ";").first.map(String.init))
        let before = try await h.admin(.GET, "/health", token: nil, headers: [("cookie", cookie)])
        let oldWorker = GatewayHarness.json(before)["pid"] as? Int
        let upgrade = try await h.adminJSON(.POST, "/upgrade")
        #expect(upgrade.status == 200, "\(upgrade.json)")
        // The old worker may answer a last connection or two while it stops accepting.
        try await h.poll(timeout: .seconds(10), "the new worker answers", fetch: { try await h.admin(.GET, "/health", token: nil) }) {
            GatewayHarness.json($0)["pid"] as? Int != oldWorker
        }
        let stats = try await h.admin(.GET, "/stats", token: nil, headers: [("cookie", cookie)])
        #expect(stats.status.code == 200)
        #expect(GatewayHarness.json(try await h.admin(.GET, "/health", token: nil))["pid"] as? Int != oldWorker)
    }

    @Test func eventsFollowAShutdownToItsEnd() async throws {
        let h = try await GatewayHarness(backends: 1, yaml: GatewayHarness.simpleConfig())
        let events = try ChildProcess.gateway(["events", "--admin", "http://127.0.0.1:\(h.adminPort)"])
        defer { events.killAndReap() }
        try await events.waitForOutput(containing: "serving", in: .stdout)
        #expect(try await h.admin(.POST, "/shutdown").status.code == 202)
        try await events.waitForOutput(containing: "shutting down", in: .stdout)
        try await events.waitForOutput(containing: "gateway: SUSPENDED", in: .stdout)
        // The stream ends with the gateway, and the command with it.
        #expect(try await events.waitForExit(timeout: .seconds(20)) == 0, "\(events.outputDescription)")
    }
}

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `gateway logs`, the logs endpoint, `log_file` and the truthful `gateway status`, with the real
/// binary under `gateway run` (the keeper relays the instances' output and keeps it).
@Suite(.timeLimit(.minutes(2)))
struct InstanceLogsEndToEndTests {
    /// An instance that first prints `line-1` … `line-N`, then serves as the demo backend (which
    /// prints a line per request it gets, health checks included).
    static func printingConfig(lines: Int = 1200, extraProcess: String = "", logRequests: Bool = true) -> String {
        let script = "i=1; while [ $i -le \(lines) ]; do echo line-$i; i=$((i+1)); done; "
            + "exec \(GatewayBinary.path) demo-backend\(logRequests ? " --log-requests" : "")"
        return GatewayHarness.supervisedConfig(
            instances: 1, extraProcess: extraProcess, command: "[\"/bin/sh\", \"-c\", \"\(script)\"]")
    }

    static func texts(_ json: [String: Any]) -> [String] {
        (json["lines"] as? [[String: Any]] ?? []).compactMap { $0["text"] as? String }
    }

    static func sequences(_ json: [String: Any]) -> [Int] {
        (json["lines"] as? [[String: Any]] ?? []).compactMap { $0["sequence"] as? Int }
    }

    /// The last K lines, then the same lines again after the worker was replaced: the keeper
    /// keeps them, not the worker.
    @Test func theLastLinesAreKeptAndSurviveAWorkerUpgrade() async throws {
        let h = try await GatewayHarness(backends: 0, yaml: Self.printingConfig(logRequests: false))
        try await h.waitForReady(1)
        let (status, all) = try await h.adminJSON(.GET, "/deployments/shop/instances/1/logs?lines=1000")
        #expect(status == 200, "\(all)")
        let texts = Self.texts(all)
        #expect(texts.count == 1000, "the ring keeps 1,000 lines")
        let end = try #require(texts.firstIndex(of: "line-1200"), "\(texts.suffix(5))")
        // The oldest kept line is exactly 1,000 lines back from the newest.
        #expect(texts.first == "line-\(1200 - end)")
        #expect(!texts.contains("line-1"))
        let sequences = Self.sequences(all)
        #expect(sequences == Array((sequences.first ?? 0)..<((sequences.first ?? 0) + 1000)))
        #expect(all["last_sequence"] as? Int == sequences.last)

        let (_, last) = try await h.adminJSON(.GET, "/deployments/shop/instances/1/logs?lines=3")
        #expect(Self.texts(last) == Array(texts.suffix(3)))
        let newest = try #require(sequences.last)
        let (_, none) = try await h.adminJSON(.GET, "/deployments/shop/instances/1/logs?after=\(newest)")
        #expect(Self.texts(none).isEmpty)

        // Errors name what is wrong.
        let (unknown, unknownJSON) = try await h.adminJSON(.GET, "/deployments/nosuch/instances/1/logs")
        #expect(unknown == 404)
        #expect((unknownJSON["error"] as? String)?.contains("'nosuch'") == true)
        let (noInstance, noInstanceJSON) = try await h.adminJSON(.GET, "/deployments/shop/instances/7/logs")
        #expect(noInstance == 404)
        #expect((noInstanceJSON["error"] as? String)?.contains("#7") == true)
        let (bad, badJSON) = try await h.adminJSON(.GET, "/deployments/shop/instances/1/logs?lines=5000")
        #expect(bad == 400)
        #expect((badJSON["error"] as? String)?.hasPrefix("lines must be") == true)
        let (post, _) = try await h.adminJSON(.POST, "/deployments/shop/instances/1/logs")
        #expect(post == 405)

        let workerBefore = try await KeeperEndToEndTests.health(h).pid
        let (upgraded, upgradeJSON) = try await h.adminJSON(.POST, "/upgrade")
        #expect(upgraded == 200, "\(upgradeJSON)")
        let workerAfter = try await KeeperEndToEndTests.health(h).pid
        #expect(workerAfter != workerBefore)
        let (_, again) = try await h.adminJSON(.GET, "/deployments/shop/instances/1/logs?lines=1000")
        #expect(Self.texts(again) == texts, "the new worker reads the same lines")
        #expect(Self.sequences(again) == sequences)
    }

    /// `gateway logs -f` prints a line the instance writes after following began, and goes on
    /// with the instance's next process after a restart.
    @Test func followPrintsNewLinesAlsoAcrossARestart() async throws {
        let h = try await GatewayHarness(backends: 0, yaml: Self.printingConfig(lines: 5))
        try await h.waitForReady(1)
        let admin = "http://127.0.0.1:\(h.adminPort)"

        let plain = try await AdminCLIClientTests.gateway(["logs", "shop", "--lines", "1000", "--admin", admin])
        #expect(plain.status == 0, "\(plain)")
        #expect(plain.stdout.prefix(5) == ["[shop#1] line-1", "[shop#1] line-2", "[shop#1] line-3", "[shop#1] line-4", "[shop#1] line-5"])

        let follower = try ChildProcess.gateway(["logs", "shop#1", "-f", "-n", "1000", "--admin", admin], environment: ["GATEWAY_ADMIN": ""])
        defer { follower.killAndReap() }
        // Its first answer is out (an instance's own lines, unprefixed for one instance) ...
        try await follower.waitForOutput(containing: "line-5", in: .stdout, timeout: .seconds(20))
        // ... and only now does the instance write the line to wait for.
        #expect(try await h.get("/?after-follow-began").status == .ok)
        try await follower.waitForOutput(containing: "request GET /?after-follow-began", in: .stdout, timeout: .seconds(20))

        let oldPID = try #require(try await h.processes().first?["pid"] as? Int)
        let (restarted, restartJSON) = try await h.adminJSON(.POST, "/deployments/shop/instances/1/restart")
        #expect(restarted == 200, "\(restartJSON)")
        let newPID = try #require(try await h.waitForReady(1).first?["pid"] as? Int)
        #expect(newPID != oldPID)
        #expect(try await h.get("/?after-restart").status == .ok)
        try await follower.waitForOutput(containing: "request GET /?after-restart", in: .stdout, timeout: .seconds(20))
        // The new process printed its own first lines again, and the follower showed them.
        #expect(follower.stdoutLines.filter { $0 == "line-1" }.count == 2)
    }

    /// `-f` keeps following when the worker it asks dies (`kill -9`): its long poll fails with
    /// the connection, and the follower asks again until the keeper's next worker answers (it
    /// exited with the error before).
    @Test func followSurvivesAWorkerThatDies() async throws {
        let h = try await GatewayHarness(backends: 0, yaml: Self.printingConfig(lines: 5))
        try await h.waitForReady(1)
        let admin = "http://127.0.0.1:\(h.adminPort)"
        let follower = try ChildProcess.gateway(["logs", "shop#1", "-f", "--admin", admin], environment: ["GATEWAY_ADMIN": ""])
        defer { follower.killAndReap() }
        try await follower.waitForOutput(containing: "line-5", in: .stdout, timeout: .seconds(20))
        let worker = try #require(GatewayHarness.json(try await h.admin(.GET, "/health"))["pid"] as? Int)
        #expect(kill(pid_t(worker), SIGKILL) == 0)
        try await h.poll(timeout: .seconds(20), "a new worker answers", fetch: { try? await h.admin(.GET, "/health") }) { response in
            response.map { GatewayHarness.json($0)["pid"] as? Int != worker && $0.status == .ok } ?? false
        }
        try await h.waitForReady(1)
        #expect(try await h.get("/?after-worker-died").status == .ok)
        try await follower.waitForOutput(containing: "request GET /?after-worker-died", in: .stdout, timeout: .seconds(20))
        #expect(follower.isRunning, "\(follower.outputDescription)")
    }

    /// `log_file` with a per-instance name is written and rotated by size, keeping `log_keep`.
    @Test func theLogFileIsRotatedBySize() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gateway-logs-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let h = try await GatewayHarness(
            backends: 0,
            yaml: Self.printingConfig(
                lines: 600, extraProcess: "      log_file: \(directory)/$GATEWAY_INSTANCE.log\n      log_max_bytes: 4096\n      log_keep: 2",
                logRequests: false))
        try await h.waitForReady(1)
        let path = "\(directory)/shop#1.log"
        func content(_ file: String) -> String { (try? String(contentsOfFile: file, encoding: .utf8)) ?? "" }
        try await h.poll(timeout: .seconds(10), "line-600 in the log files", fetch: { content(path) + content(path + ".1") }) {
            $0.contains("[shop#1] line-600\n")
        }
        for file in [path, path + ".1", path + ".2"] {
            let size = (try FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? -1
            #expect((1...4096).contains(size), "\(file): \(size) bytes")
        }
        #expect(!FileManager.default.fileExists(atPath: path + ".3"), "log_keep: 2")
        #expect(!content(path + ".2").contains("line-1\n"), "the oldest lines were rotated away")
    }

    /// A suspended instance is SUSPENDED (not READY, not ready) in /processes and in `gateway
    /// status`; a restart counts as planned, a kill as a crash; the command is shown as run.
    @Test func statusTellsTheTruth() async throws {
        let h = try await GatewayHarness(
            backends: 0,
            yaml: GatewayHarness.supervisedConfig(
                instances: 2, command: "[\"gateway\", \"demo-backend\", \"--port\", \"$PORT\", \"--log-requests\"]"))
        try await h.waitForReady(2)
        let admin = "http://127.0.0.1:\(h.adminPort)"
        let (suspended, suspendJSON) = try await h.adminJSON(.POST, "/suspend?deployment=shop&instance=1&timeout=0")
        #expect(suspended == 200, "\(suspendJSON)")
        let rows = try await h.waitForProcesses("shop#1 SUSPENDED") { rows in
            rows.contains { $0["instance"] as? String == "shop#1" && $0["state"] as? String == "SUSPENDED" }
        }
        let first = try #require(rows.first { $0["instance"] as? String == "shop#1" })
        #expect(first["ready"] as? Bool == false)
        #expect(first["process_state"] as? String == "READY")
        #expect(first["suspended_by"] as? String == "backend")
        let second = try #require(rows.first { $0["instance"] as? String == "shop#2" })
        #expect(second["state"] as? String == "READY")
        let port = try #require(first["port"] as? Int)
        let command = first["command"] as? [String] ?? []
        #expect(command.dropFirst() == ["demo-backend", "--port", "\(port)", "--log-requests"], "$PORT expanded: \(command)")
        #expect(command.first?.hasSuffix("gateway") == true)

        let status = try await AdminCLIClientTests.gateway(["status", "--admin", admin])
        #expect(status.status == 0, "\(status)")
        let line = try #require(status.stdout.first { $0.hasPrefix("shop#1 ") })
        #expect(line.contains(" SUSPENDED ") && line.contains(" no ") && line.contains(" \(port) "), "\(line)")
        #expect(status.stdout.contains { $0.hasPrefix("shop#1  ") && $0.hasSuffix("demo-backend --port \(port) --log-requests") })

        _ = try await h.adminJSON(.POST, "/resume?deployment=shop&instance=1")
        try await h.waitForReady(2)

        // A restart is planned; a killed process is a crash.
        let (restarted, _) = try await h.adminJSON(.POST, "/deployments/shop/instances/2/restart")
        #expect(restarted == 200)
        let victim = try #require(try await h.processes().first { $0["instance"] as? String == "shop#1" }?["pid"] as? Int)
        #expect(kill(Int32(victim), SIGKILL) == 0)
        let after = try await h.waitForProcesses("shop#1 respawned") { rows in
            rows.contains { $0["instance"] as? String == "shop#1" && $0["crashes"] as? Int == 1 && $0["state"] as? String == "READY" }
        }
        let one = try #require(after.first { $0["instance"] as? String == "shop#1" })
        let two = try #require(after.first { $0["instance"] as? String == "shop#2" })
        #expect(one["planned_restarts"] as? Int == 0)
        #expect(one["restarts"] as? Int == 1)
        #expect(two["crashes"] as? Int == 0)
        #expect(two["planned_restarts"] as? Int == 1)
    }

    /// Memory is the whole tree: an instance that started a child (a second demo backend)
    /// shows more than its own resident memory.
    @Test func memoryIsTheWholeProcessTree() async throws {
        let script = "\(GatewayBinary.path) demo-backend --port 0 & exec \(GatewayBinary.path) demo-backend"
        let h = try await GatewayHarness(
            backends: 0, yaml: GatewayHarness.supervisedConfig(instances: 1, command: "[\"/bin/sh\", \"-c\", \"\(script)\"]"))
        let row = try #require(try await h.waitForReady(1).first)
        let pid = try #require(row["pid"] as? Int)
        // The child runs (it printed its listening line into the instance's output).
        try await h.poll(timeout: .seconds(10), "the child's line", fetch: {
            Self.texts(try await h.adminJSON(.GET, "/deployments/shop/instances/1/logs").json)
        }) { $0.filter { $0.contains("listening on") }.count == 2 }
        let tree = try #require(try await h.processes().first?["rss_bytes"] as? Int)
        let statm = try String(contentsOfFile: "/proc/\(pid)/statm", encoding: .utf8).split(separator: " ")
        let own = (Int(statm[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE)))
        #expect(tree > own + own / 2, "tree \(tree) bytes, leader alone \(own)")
    }
}

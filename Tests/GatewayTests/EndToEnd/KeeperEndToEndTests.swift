import Foundation
import Glibc
import Testing

/// The keeper and its worker with real processes and sockets: `gateway upgrade` and a killed
/// worker under a mixed load (`bench/self-upgrade/load.py load`, the benchmark's own driver:
/// fresh and keep-alive HTTP/1.1, `/sleep?ms=300`, `POST /echo` with checked bodies, WebSocket
/// echo sessions, h2c through h2load), a broken new binary, a killed keeper, and the systemd
/// interfaces.
@Suite(.timeLimit(.minutes(2)))
struct KeeperEndToEndTests {
    static let loadScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("bench/self-upgrade/load.py").path

    /// The mixed load, started; `finish()` waits for its summary.
    struct Load {
        let process: ChildProcess
        let report: String

        /// The default mix: every kind of client; `clients` replaces it.
        static let mixed = ["--fresh", "2", "--keepalive", "2", "--sleep", "1", "--post", "1", "--websocket", "1", "--h2", "1"]

        static func start(port: Int, seconds: Int, directory: URL, clients: [String] = mixed) async throws -> Load {
            let report = directory.appendingPathComponent("load-\(UUID().uuidString).json").path
            let process = try ChildProcess(
                executable: "/usr/bin/env",
                arguments: [
                    "python3", KeeperEndToEndTests.loadScript, "load", "--http-port", "\(port)", "--h2-port", "\(port)",
                    "--duration", "\(seconds)", "--json", report,
                ] + clients)
            try await process.waitForOutput(containing: "load: started", in: .stdout, timeout: .seconds(10))
            return Load(process: process, report: report)
        }

        func finish(seconds: Int) async throws -> [String: Any] {
            _ = try await process.waitForExit(timeout: .seconds(seconds + 60))
            guard let data = FileManager.default.contents(atPath: report),
                let json = try JSONSerialization.jsonObject(with: data) as? [String: Any]
            else { throw TestSupportError("no report from the load:\n\(process.outputDescription)") }
            return json
        }
    }

    /// `failed`, `refused`, `requests`... of the whole load; what went wrong is in `problems`.
    static func total(_ summary: [String: Any], _ field: String) -> Int {
        summary[field] as? Int ?? -1
    }

    static func problems(_ summary: [String: Any]) -> String {
        "\(summary["first_errors"] ?? "") \(summary["reasons"] ?? "")"
    }

    static func health(_ h: GatewayHarness) async throws -> (pid: Int32, keeper: Int32, generation: Int) {
        let (status, json) = try await h.adminJSON(.GET, "/health")
        #expect(status == 200)
        return (Int32(json["pid"] as? Int ?? 0), Int32(json["keeper_pid"] as? Int ?? 0), json["worker_generation"] as? Int ?? 0)
    }

    /// Waits until the worker that answers has served `count` requests: the load is running
    /// through it (an event to wait for, rather than a guess at how long that takes).
    static func waitForServed(_ h: GatewayHarness, _ count: Int) async throws {
        try await h.waitForStats(timeout: .seconds(20), "\(count) requests served by this worker") { stats in
            ((stats["global"] as? [String: Any])?["total"] as? Int ?? 0) >= count
        }
    }

    static func instancePIDs(_ h: GatewayHarness) async throws -> [Int32] {
        try await h.processes().compactMap { ($0["pid"] as? Int).map(Int32.init) }.sorted()
    }

    /// Three demo instances behind a listener for HTTP/1.1 and h2c.
    static func supervised() async throws -> GatewayHarness {
        let yaml = GatewayHarness.supervisedConfig(instances: 3)
            .replacingOccurrences(of: "listen: {listen}\n", with: "listeners:\n  - listen: {listen}\n    protocols: [http1, h2c]\n")
        let h = try await GatewayHarness(backends: 0, yaml: yaml)
        try await h.waitForReady(3)
        return h
    }

    /// `gateway upgrade` twice under the mixed load: nothing fails, nothing is refused, the
    /// instances are the same processes, the worker changed and the keeper did not.
    @Test func upgradesUnderMixedLoadLoseNothing() async throws {
        let h = try await Self.supervised()
        let before = try await Self.health(h)
        let instances = try await Self.instancePIDs(h)
        #expect(before.keeper == h.gateway.pid, "the process `gateway run` started is the keeper")
        #expect(before.pid != before.keeper)

        let load = try await Load.start(port: h.port, seconds: 8, directory: h.directory)
        try await Self.waitForServed(h, 200)
        for _ in 0..<2 {
            let cli = try ChildProcess.gateway(["upgrade", "--admin", "http://127.0.0.1:\(h.adminPort)"])
            #expect(try await cli.waitForExit(timeout: .seconds(60)) == 0, "\(cli.outputDescription)")
            #expect(cli.stdoutLines.contains { $0.contains("serves") })
            // The load reaches the new worker (its counters start at zero) before the next one.
            try await Self.waitForServed(h, 200)
        }
        let summary = try await load.finish(seconds: 8)
        #expect(Self.total(summary, "refused") == 0, "\(Self.problems(summary))")
        #expect(Self.total(summary, "failed") == 0, "\(Self.problems(summary))")
        #expect(Self.total(summary, "requests") > 500)

        let after = try await Self.health(h)
        #expect(after.keeper == before.keeper)
        #expect(after.pid != before.pid)
        #expect(after.generation == before.generation + 2)
        #expect(try await Self.instancePIDs(h) == instances, "no instance was restarted")
        #expect(h.gateway.stderrLines.contains { $0.contains("worker handover finished") && $0.contains("adopted=3") })
    }

    /// Connections a replaced worker accepted in its last moments are served, never reset: NIO's
    /// bootstrap closes a connection whose setup finishes after its listener closed, so the old
    /// worker pauses its listeners instead of closing them. Fresh connections only, as fast as
    /// they come, across six upgrades (before the fix about one upgrade in two reset one).
    @Test func connectionsAcceptedJustBeforeAHandoverAreServed() async throws {
        let h = try await Self.supervised()
        let load = try await Load.start(
            port: h.port, seconds: 12, directory: h.directory,
            clients: ["--fresh", "4", "--keepalive", "0", "--sleep", "0", "--post", "0", "--websocket", "0", "--h2", "0"])
        for _ in 0..<6 {
            let (status, json) = try await h.adminJSON(.POST, "/upgrade")
            #expect(status == 200, "\(json)")
            try await Self.waitForServed(h, 100)
        }
        let summary = try await load.finish(seconds: 12)
        #expect(Self.total(summary, "failed") == 0, "\(Self.problems(summary))")
        #expect(Self.total(summary, "refused") == 0, "\(Self.problems(summary))")
        #expect(Self.total(summary, "requests") > 500)
    }

    /// The sockets keep the keeper's backlog (1024) whichever worker listens on them: NIO calls
    /// listen(128) on a socket it is handed, which would shrink the queue that holds clients
    /// while workers change (read with `ss`, whose Send-Q is a listener's backlog).
    @Test func workersKeepTheKeepersBacklog() async throws {
        let h = try await Self.supervised()
        for port in [h.port, h.adminPort] {
            let ss = try ChildProcess(executable: "/usr/bin/ss", arguments: ["-Hltn", "sport = :\(port)"])
            #expect(try await ss.waitForExit(timeout: .seconds(5)) == 0)
            try await ss.waitForOutputToEnd()
            let columns = ss.stdoutLines.first?.split(separator: " ", omittingEmptySubsequences: true) ?? []
            #expect(columns.count > 2 && columns[2] == "1024", "\(ss.stdoutLines)")
        }
    }

    /// `kill -9` of the worker: the keeper keeps the sockets (no connection refused) and the
    /// instances, and a new worker serves within 3 s. Only requests in flight in the killed
    /// worker may fail: at most one per HTTP/1.1 and WebSocket client (7) and the h2c client's
    /// 4 concurrent streams.
    @Test func aKilledWorkerIsReplacedAndTheInstancesKeepRunning() async throws {
        let h = try await Self.supervised()
        let before = try await Self.health(h)
        let instances = try await Self.instancePIDs(h)
        let load = try await Load.start(port: h.port, seconds: 6, directory: h.directory)
        try await Self.waitForServed(h, 200)

        let killed = ContinuousClock.now
        #expect(kill(before.pid, SIGKILL) == 0)
        var after = before
        while after.pid == before.pid || after.pid == 0, ContinuousClock.now - killed < .seconds(10) {
            try await Task.sleep(for: .milliseconds(50))
            after = (try? await Self.health(h)) ?? before
        }
        let serving = try await TestHTTPClient.get(port: h.port, path: "/", timeout: .seconds(5))
        #expect(serving.status == .ok)
        #expect(ContinuousClock.now - killed < .seconds(3), "serving again took \(ContinuousClock.now - killed)")
        #expect(after.keeper == before.keeper)

        let summary = try await load.finish(seconds: 6)
        #expect(Self.total(summary, "refused") == 0, "\(Self.problems(summary))")
        #expect(Self.total(summary, "failed") <= 11, "\(Self.problems(summary))")
        #expect(try await Self.instancePIDs(h) == instances, "no instance was restarted")
    }

    /// An upgrade to another binary: the new worker runs it, then the keeper re-executes itself
    /// into it in place (same pid, sockets and children kept), so no old code is left running.
    /// Under the mixed load nothing fails; the instances keep their pids and their output still
    /// reaches the keeper's log; a later upgrade and a kill -9 of the (new) keeper behave as
    /// before: the watchdog channel came through the exec too.
    @Test func anUpgradeToAnotherBinaryReExecutesTheKeeperInPlace() async throws {
        let h = try await Self.supervised()
        let keeper = h.gateway.pid
        let instances = try await Self.instancePIDs(h)
        let next = h.directory.appendingPathComponent("gateway-next").path
        try FileManager.default.copyItem(atPath: GatewayBinary.path, toPath: next)

        let load = try await Load.start(port: h.port, seconds: 6, directory: h.directory)
        try await Self.waitForServed(h, 100)
        let (status, json) = try await h.adminJSON(.POST, "/upgrade?binary=\(next)")
        #expect(status == 200, "\(json)")
        try await h.gateway.waitForOutput(containing: "keeper re-executed in place", timeout: .seconds(10))
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(keeper)/exe") == next)
        let summary = try await load.finish(seconds: 6)
        #expect(Self.total(summary, "failed") == 0, "\(Self.problems(summary))")
        #expect(Self.total(summary, "refused") == 0, "\(Self.problems(summary))")

        let health = try await Self.health(h)
        #expect(health.keeper == keeper)
        #expect(try await Self.instancePIDs(h) == instances, "no instance was restarted")
        // The instances' output (the demo backend logs each request) still comes through.
        let relayed = h.gateway.stdoutLines.count
        #expect(try await h.get("/?after-reexec").status == .ok)
        try await h.gateway.waitForOutput(containing: "after-reexec", timeout: .seconds(5))
        #expect(h.gateway.stdoutLines.count > relayed)

        // The keeper now runs the new file: an upgrade to its own binary needs no re-exec.
        let (again, _) = try await h.adminJSON(.POST, "/upgrade")
        #expect(again == 200)
        #expect(h.gateway.stderrLines.filter { $0.contains("keeper re-executing in place") }.count == 1)

        let worker = try await Self.health(h).pid
        #expect(kill(keeper, SIGKILL) == 0)
        #expect(await waitUntilGone([worker] + instances, timeout: .seconds(10)).isEmpty)
    }

    /// An upgrade to a binary that exits at once is reported, and the worker that serves keeps
    /// serving.
    @Test func anUpgradeToABrokenBinaryIsReportedAndTheOldWorkerServes() async throws {
        let h = try await Self.supervised()
        let before = try await Self.health(h)
        let broken = h.directory.appendingPathComponent("broken-gateway").path
        try "#!/bin/sh\necho 'this gateway is broken' >&2\nexit 3\n".write(toFile: broken, atomically: true, encoding: .utf8)
        chmod(broken, 0o755)

        let (status, json) = try await h.adminJSON(.POST, "/upgrade?binary=\(broken)")
        #expect(status == 500)
        #expect((json["error"] as? String)?.contains("exited before it was ready") == true, "\(json)")
        let after = try await Self.health(h)
        #expect(after.pid == before.pid)
        #expect(try await h.get("/").status == .ok)

        let (missing, _) = try await h.adminJSON(.POST, "/upgrade?binary=/nonexistent/gateway")
        #expect(missing == 400)
        let (relative, _) = try await h.adminJSON(.POST, "/upgrade?binary=gateway")
        #expect(relative == 400)
    }

    /// `kill -9` of the keeper: its worker, its instances and their children all go.
    @Test func aKilledKeeperLeavesNothingBehind() async throws {
        let h = try await Self.supervised()
        let worker = try await Self.health(h).pid
        let instances = try await Self.instancePIDs(h)
        #expect(instances.count == 3)
        #expect(kill(h.gateway.pid, SIGKILL) == 0)
        let left = await waitUntilGone([worker] + instances, timeout: .seconds(10))
        #expect(left.isEmpty, "still running: \(left)")
    }

    /// SIGTERM to the keeper: the worker drains and stops the instances, and the keeper exits 0.
    @Test func sigtermToTheKeeperShutsEverythingDown() async throws {
        let h = try await Self.supervised()
        let worker = try await Self.health(h).pid
        let instances = try await Self.instancePIDs(h)
        h.gateway.terminate(signal: SIGTERM)
        #expect(try await h.gateway.waitForExit(timeout: .seconds(30)) == 0)
        #expect(await waitUntilGone([worker] + instances, timeout: .seconds(5)).isEmpty)
        #expect(h.gateway.stderrLines.contains { $0.contains("keeper stopped") })
    }
}

extension KeeperEndToEndTests {
    /// A datagram socket bound where `$NOTIFY_SOCKET` points, as systemd's is.
    final class NotifySocket: @unchecked Sendable {
        let path: String
        let fd: Int32

        init(directory: URL) throws {
            path = directory.appendingPathComponent("notify.sock").path
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard bound == 0 else { throw TestSupportError("cannot bind \(path): \(errno)") }
            var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }

        deinit { close(fd) }

        /// The next message that contains `text`, within `timeout`; every message read is kept.
        func next(containing text: String, timeout: Duration = .seconds(20), seen: inout [String]) throws -> String {
            let deadline = ContinuousClock.now + timeout
            var buffer = [UInt8](repeating: 0, count: 4096)
            while ContinuousClock.now < deadline {
                let count = recv(fd, &buffer, buffer.count, 0)
                guard count > 0 else { continue }
                let message = String(decoding: buffer[..<count], as: UTF8.self)
                seen.append(message)
                if message.contains(text) { return message }
            }
            throw TestSupportError("no notification with \(text); got \(seen)")
        }
    }

    /// `Type=notify`: READY=1 with the keeper as MAINPID; RELOADING=1 (with MONOTONIC_USEC) and
    /// READY=1 again around an upgrade and a reload; STOPPING=1 at shutdown.
    @Test func systemdHearsReadyReloadingAndStopping() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gateway-notify-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let notify = try NotifySocket(directory: directory)
        let proxy = try freePort()
        let admin = try freePort()
        let config = directory.appendingPathComponent("gateway.yaml")
        try TestAdmin.withAdminUser(GatewayHarness.supervisedConfig(instances: 1))
            .replacingOccurrences(of: "{listen}", with: "127.0.0.1:\(proxy)")
            .replacingOccurrences(of: "{admin}", with: "127.0.0.1:\(admin)")
            .write(to: config, atomically: true, encoding: .utf8)
        let keeper = try ChildProcess.gateway(["run", "--config", config.path], environment: ["NOTIFY_SOCKET": notify.path])
        var seen: [String] = []
        let ready = try notify.next(containing: "READY=1", seen: &seen)
        #expect(ready.contains("MAINPID=\(keeper.pid)"))

        let upgrade = try ChildProcess.gateway(["upgrade", "--admin", "http://127.0.0.1:\(admin)"])
        #expect(try await upgrade.waitForExit(timeout: .seconds(60)) == 0, "\(upgrade.outputDescription)")
        let reloading = try notify.next(containing: "RELOADING=1", seen: &seen)
        #expect(reloading.contains("MONOTONIC_USEC="))
        #expect(try notify.next(containing: "READY=1", seen: &seen).contains("worker 2"))

        keeper.terminate(signal: SIGHUP)
        _ = try notify.next(containing: "RELOADING=1", seen: &seen)
        #expect(try notify.next(containing: "READY=1", seen: &seen).contains("reloaded"))

        keeper.terminate(signal: SIGTERM)
        _ = try notify.next(containing: "STOPPING=1", seen: &seen)
        #expect(try await keeper.waitForExit(timeout: .seconds(30)) == 0)
    }

    /// Socket activation: the listening socket comes in as fd 3 with `LISTEN_FDS`/`LISTEN_PID`
    /// (set by a shell that then execs the gateway, so the pid is the gateway's, as systemd
    /// does it). The gateway serves on it and binds the other (admin) itself.
    @Test func socketActivationServesOnTheInheritedSocket() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gateway-activation-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let (socket, port) = try Self.listeningSocket()
        // Closed once: by the line below once the gateway has it, or here if the test ends
        // before. A second close would close whatever descriptor took the number meanwhile (a
        // socket of NIO's in this process, which then crashed on EBADF).
        var socketOpen = true
        defer { if socketOpen { close(socket) } }
        let admin = try freePort()
        let config = directory.appendingPathComponent("gateway.yaml")
        try TestAdmin.withAdminUser(GatewayHarness.supervisedConfig(instances: 1))
            .replacingOccurrences(of: "{listen}", with: "127.0.0.1:\(port)")
            .replacingOccurrences(of: "{admin}", with: "127.0.0.1:\(admin)")
            .write(to: config, atomically: true, encoding: .utf8)
        let keeper = try ChildProcess(
            executable: "/bin/sh",
            arguments: ["-c", "LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=proxy exec \"$0\" run --config \"$1\"", GatewayBinary.path, config.path],
            descriptor3: socket)
        try await keeper.waitForOutput(containing: "listening socket from systemd", timeout: .seconds(20))
        try await keeper.waitForOutput(containing: "worker serving", timeout: .seconds(20))
        // Our copy closes: only the gateway's keeps the port open now.
        close(socket)
        socketOpen = false
        // The worker serves once its instance is ready; a connection made before it accepts
        // waits in the socket's backlog.
        try await keeper.waitForOutput(containing: "joined the rotation", timeout: .seconds(20))
        #expect(try await TestHTTPClient.get(port: port, path: "/", timeout: .seconds(5)).status == .ok)
        keeper.terminate(signal: SIGTERM)
        #expect(try await keeper.waitForExit(timeout: .seconds(30)) == 0)
    }

    /// A bound, listening IPv4 socket on a free port, without close-on-exec.
    static func listeningSocket() throws -> (Int32, Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 128) == 0 else { throw TestSupportError("cannot listen: \(errno)") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }
}

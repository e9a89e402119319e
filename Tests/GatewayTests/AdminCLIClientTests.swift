import Foundation
import Testing

@testable import Gateway

/// The admin subcommands as a script runs them: the real `gateway` binary as a child process
/// (so exit codes are the process's own) against `AdminCLICannedServer`, which answers with
/// canned JSON. These test the client side only: what is sent, what is printed, which exit code.
@Suite(.timeLimit(.minutes(2)))
struct AdminCLIClientTests {
    struct Run {
        var status: Int32
        var stdout: [String]
        var stderr: [String]
    }

    /// Runs `gateway arguments...` to its end (bounded) and collects both streams.
    static func gateway(_ arguments: [String], environment: [String: String] = [:]) async throws -> Run {
        // An empty GATEWAY_ADMIN counts as unset, so the runner's own environment cannot leak in.
        var environment = environment
        if environment[AdminEndpoint.environmentVariable] == nil { environment[AdminEndpoint.environmentVariable] = "" }
        let child = try ChildProcess.gateway(arguments, environment: environment)
        let status = try await child.waitForExit(timeout: .seconds(30))
        try await child.waitForOutputToEnd()
        return Run(status: status, stdout: child.stdoutLines, stderr: child.stderrLines)
    }

    // MARK: status

    /// The canned server answers every path alike: this one reply serves as `/processes` and as
    /// `/health` (each decoder ignores the other's fields).
    static func statusReply(processes: String) -> String {
        String(processes.trimmingCharacters(in: .whitespacesAndNewlines).dropLast())
            + #", "status": "ok", "state": "RUNNING", "pid": 701, "keeper_pid": 700, "worker_generation": 3, "version": "0.1.0"}"#
    }

    static let gatewayLines = ["keeper    pid 700", "worker    pid 701  generation 3  RUNNING, version 0.1.0", ""]

    @Test func statusPrintsTheKeeperTheWorkerAndTheTable() async throws {
        let server = try await AdminCLICannedServer(status: 200, reply: Self.statusReply(processes: AdminCLIFormattingTests.processesJSON))
        defer { Task { await server.close() } }
        let run = try await Self.gateway(["status", "--admin", server.url])
        #expect(run.status == 0, "\(run)")
        // stdout is a pipe here, so no terminal width applies and every column shows.
        #expect(run.stdout == Self.gatewayLines + ProcessTable.render(try AdminCLIFormattingTests.processes()))
        #expect(run.stdout.dropFirst(3).first?.hasPrefix("NAME     PID  PORT  STATE") == true)
        #expect(run.stderr.isEmpty)
        #expect(server.requests.map(\.uri) == ["/processes", "/health"])
        let request = try #require(server.requests.first)
        #expect(request.method == "GET")
        #expect(request.uri == "/processes")
        #expect(request.headers["connection"] == "close")
        #expect(request.headers["host"] == "127.0.0.1:\(server.port)")
    }

    @Test func statusJSONIsTheServersBodyUnchanged() async throws {
        let server = try await AdminCLICannedServer(status: 200, reply: AdminCLIFormattingTests.processesJSON)
        defer { Task { await server.close() } }
        let run = try await Self.gateway(["status", "--json", "--admin", server.url])
        #expect(run.status == 0)
        #expect(run.stdout.joined(separator: "\n") == AdminCLIFormattingTests.processesJSON)
    }

    @Test func statusWithNoProcessesSaysSoAndSucceeds() async throws {
        let server = try await AdminCLICannedServer(status: 200, reply: Self.statusReply(processes: #"{"processes": []}"#))
        defer { Task { await server.close() } }
        let run = try await Self.gateway(["status", "--admin", server.url])
        #expect(run.status == 0)
        #expect(run.stdout == Self.gatewayLines + ["the gateway supervises no processes"])
    }

    // MARK: failures the gateway reports: exit 1

    @Test func errorAnswerExitsOneWithTheServersMessage() async throws {
        let server = try await AdminCLICannedServer(status: 404, reply: #"{"error": "no deployment 'shopx'"}"#)
        defer { Task { await server.close() } }
        let run = try await Self.gateway(["restart", "shopx", "--admin", server.url])
        #expect(run.status == 1)
        #expect(run.stderr == ["gateway: no deployment 'shopx'"])
        #expect(run.stdout.isEmpty)
        #expect(server.requests.map { "\($0.method) \($0.uri)" } == ["POST /deployments/shopx/restart"])
    }

    @Test func conflictWithoutJSONStillExitsOne() async throws {
        let server = try await AdminCLICannedServer(status: 409, reply: "busy\n")
        defer { Task { await server.close() } }
        let run = try await Self.gateway(["stop", "shop", "--admin", server.url])
        #expect(run.status == 1)
        #expect(run.stderr == ["gateway: HTTP 409: busy"])
    }

    @Test func failedRollingRestartPrintsItsStepsAndExitsOne() async throws {
        let reply = """
            {"deployment": "shop", "ok": false, "message": "shop#2 did not get ready within 30s",
             "steps": [
               {"instance": "shop#1", "old_pid": 11, "new_pid": 21, "old_port": 9100, "new_port": 9103,
                "drained": true, "drain_ms": 12, "out_of_rotation_ms": 900, "error": null},
               {"instance": "shop#2", "old_pid": 12, "new_pid": null, "old_port": 9101, "new_port": null,
                "drained": null, "drain_ms": null, "out_of_rotation_ms": null, "error": "not ready within 30s"}
             ]}
            """
        let server = try await AdminCLICannedServer(status: 500, reply: reply)
        defer { Task { await server.close() } }
        let run = try await Self.gateway(["restart", "shop", "--timeout", "60", "--admin", server.url])
        #expect(run.status == 1)
        #expect(
            run.stdout == [
                "shop#1: pid 11 -> 21, port 9100 -> 9103, drained in 12 ms, out of rotation 900 ms",
                "shop#2: pid 12 -> -, port 9101 -> -, failed: not ready within 30s",
            ]
        )
        #expect(run.stderr == ["gateway: restart of shop failed: shop#2 did not get ready within 30s"])
    }

    @Test func successfulRollingRestartExitsZero() async throws {
        let reply = """
            {"deployment": "shop", "ok": true, "message": "rolled 1 instance", "steps": [
              {"instance": "shop#1", "old_pid": 11, "new_pid": 21, "old_port": 9100, "new_port": 9103,
               "drained": true, "drain_ms": 3, "out_of_rotation_ms": 40, "error": null}]}
            """
        let server = try await AdminCLICannedServer(status: 200, reply: reply)
        defer { Task { await server.close() } }
        let run = try await Self.gateway(["restart", "shop", "--admin", server.url])
        #expect(run.status == 0)
        #expect(run.stdout.last == "shop: rolled 1 instance")
        #expect(run.stdout.count == 2)
    }

    @Test func suspendThatDidNotDrainExitsOne() async throws {
        let server = try await AdminCLICannedServer(
            status: 200,
            reply: #"{"scope": "backend '127.0.0.1:9001' of deployment 'shop'", "drained": false, "active": 2, "state": "SUSPENDING", "cancelled": false}"#
        )
        defer { Task { await server.close() } }
        let run = try await Self.gateway(["suspend", "shop@127.0.0.1:9001", "--timeout", "0.5", "--admin", server.url])
        #expect(run.status == 1)
        #expect(run.stdout.contains("drained: no"))
        #expect(run.stdout.contains("active:  2"))
        #expect(
            run.stderr == [
                "gateway: backend '127.0.0.1:9001' of deployment 'shop' did not drain before the timeout: 2 requests still in flight"
            ]
        )
        let request = try #require(server.requests.first)
        #expect(request.method == "POST")
        #expect(request.path == "/suspend")
        #expect(request.query == ["deployment": "shop", "backend": "127.0.0.1:9001", "timeout": "0.5"])
        // The value is percent-encoded on the wire.
        #expect(request.uri.contains("backend=127.0.0.1%3A9001"))
    }

    @Test func cancelledSuspendExitsOne() async throws {
        let server = try await AdminCLICannedServer(
            status: 200,
            reply: #"{"scope": "gateway", "drained": false, "active": 1, "state": "RUNNING", "cancelled": true}"#
        )
        defer { Task { await server.close() } }
        let run = try await Self.gateway(["suspend", "--admin", server.url])
        #expect(run.status == 1)
        #expect(run.stderr == ["gateway: the suspend of gateway was cancelled by a resume"])
        // No SCOPE, no --timeout: nothing in the query; the server's defaults apply.
        #expect(server.requests.map(\.uri) == ["/suspend"])
    }

    @Test func drainedSuspendOfAnInstanceExitsZero() async throws {
        let server = try await AdminCLICannedServer(
            status: 200,
            reply: #"{"scope": "instance shop#2", "drained": true, "active": 0, "state": "SUSPENDED", "cancelled": false, "extra": 1}"#
        )
        defer { Task { await server.close() } }
        let run = try await Self.gateway(["suspend", "shop#2", "--timeout", "-1", "--admin", server.url])
        #expect(run.status == 0, "\(run)")
        #expect(run.stdout == ["scope:   instance shop#2", "state:   SUSPENDED", "drained: yes", "active:  0"])
        #expect(server.requests.first?.query == ["deployment": "shop", "instance": "2", "timeout": "-1"])
    }

    @Test func stopAndStartUseTheInstancePath() async throws {
        let reply = """
            {"message": "stopped shop#2", "instances": [
              {"deployment": "shop", "instance": "shop#2", "index": 2, "pid": null, "port": null, "state": "STOPPED",
               "reason": "stopped by the admin API", "ready": false, "active": 0, "total": 7, "restarts": 0,
               "uptime_s": null, "rss_bytes": null, "cpu_percent": null, "last_exit": "exited with status 0 after 3.0 s"}]}
            """
        let server = try await AdminCLICannedServer(status: 200, reply: reply)
        defer { Task { await server.close() } }
        let stop = try await Self.gateway(["stop", "shop#2", "--admin", server.url])
        #expect(stop.status == 0)
        #expect(stop.stdout.first == "stopped shop#2")
        #expect(stop.stdout.count == 3)
        #expect(stop.stdout.last?.hasPrefix("shop#2    -     -  STOPPED") == true)
        let start = try await Self.gateway(["start", "shop", "--admin", server.url])
        #expect(start.status == 0)
        #expect(
            server.requests.map { "\($0.method) \($0.uri)" } == [
                "POST /deployments/shop/instances/2/stop", "POST /deployments/shop/start",
            ]
        )
    }

    @Test func reloadErrorExitsOneWithTheConfigError() async throws {
        let server = try await AdminCLICannedServer(
            status: 400,
            reply: #"{"error": "gateway.yaml:12:3: deployments[0].name: expected a name"}"#
        )
        defer { Task { await server.close() } }
        let run = try await Self.gateway(["reload", "--admin", server.url])
        #expect(run.status == 1)
        #expect(run.stderr == ["gateway: gateway.yaml:12:3: deployments[0].name: expected a name"])
    }

    @Test func reloadPrintsTheChanges() async throws {
        let server = try await AdminCLICannedServer(
            status: 200,
            reply: #"{"ok": true, "changes": ["deployment 'x' added", "deployment 'shop' rolled (process changed)"]}"#
        )
        defer { Task { await server.close() } }
        let run = try await Self.gateway(["reload", "--admin", server.url])
        #expect(run.status == 0)
        #expect(run.stdout == ["reloaded: 2 changes", "  deployment 'x' added", "  deployment 'shop' rolled (process changed)"])
        #expect(server.requests.map { "\($0.method) \($0.uri)" } == ["POST /reload"])
    }

    @Test func shutdownSendsTheTimeout() async throws {
        let server = try await AdminCLICannedServer(status: 202, reply: #"{"shutting_down": true, "timeout_s": 5}"#)
        defer { Task { await server.close() } }
        let run = try await Self.gateway(["shutdown", "--timeout", "5", "--admin", server.url])
        #expect(run.status == 0)
        #expect(run.stdout == ["the gateway is shutting down; requests in flight get up to 5 s"])
        #expect(server.requests.map { "\($0.method) \($0.uri)" } == ["POST /shutdown?timeout=5"])
    }

    @Test func adminURLComesFromTheEnvironmentWhenNotGiven() async throws {
        let server = try await AdminCLICannedServer(
            status: 200,
            reply: #"{"scope": "entry point 'api' of deployment 'shop'", "state": "RUNNING", "previous_state": "SUSPENDED"}"#
        )
        defer { Task { await server.close() } }
        let run = try await Self.gateway(["resume", "shop/api"], environment: ["GATEWAY_ADMIN": server.url + "/"])
        #expect(run.status == 0, "\(run)")
        #expect(run.stdout == ["scope: entry point 'api' of deployment 'shop'", "state: SUSPENDED -> RUNNING"])
        #expect(server.requests.first?.query == ["deployment": "shop", "entry_point": "api"])
    }

    // MARK: no admin API: exit 2

    @Test func nothingListeningExitsTwo() async throws {
        let refusing = try RefusingPort()
        let port = refusing.port
        let run = try await Self.gateway(["status", "--admin", "http://127.0.0.1:\(port)"])
        #expect(run.status == 2)
        #expect(run.stderr == ["gateway: cannot reach the admin API at http://127.0.0.1:\(port): connection refused"])
        withExtendedLifetime(refusing) {}
    }

    @Test func answerThatIsNotHTTPExitsTwo() async throws {
        let server = try await AdminCLICannedServer(status: 200, reply: "", raw: "SSH-2.0-OpenSSH_9.2\r\n")
        defer { Task { await server.close() } }
        let run = try await Self.gateway(["resume", "--admin", server.url])
        #expect(run.status == 2)
        #expect(run.stderr.first?.hasPrefix("gateway: \(server.url) does not answer like the gateway's admin API") == true)
    }

    @Test func successThatIsNotTheAdminAPIsJSONExitsTwo() async throws {
        let server = try await AdminCLICannedServer(status: 200, reply: "<html>hello</html>")
        defer { Task { await server.close() } }
        let run = try await Self.gateway(["suspend", "shop", "--admin", server.url])
        #expect(run.status == 2)
        #expect(run.stderr == ["gateway: \(server.url) does not answer like the gateway's admin API: HTTP 200 with unexpected JSON: not JSON"])
    }

    @Test func noAnswerWithinTheTimeoutExitsTwo() async throws {
        let server = try await AdminCLICannedServer(status: 200, reply: "", silent: true)
        defer { Task { await server.close() } }
        let started = ContinuousClock.now
        let run = try await Self.gateway(["restart", "shop", "--timeout", "1", "--admin", server.url])
        #expect(run.status == 2)
        #expect(run.stderr == ["gateway: no answer from the admin API at \(server.url) within 1 s"])
        // The request did arrive; the client gave up on its own deadline, not later.
        #expect(server.requests.count == 1)
        #expect(ContinuousClock.now - started < .seconds(10))
    }

    // MARK: bad usage: exit 64, naming the value

    @Test(arguments: [
        (["suspend", "shop#x"], "shop#x"),
        (["resume", "shop@127.0.0.1"], "shop@127.0.0.1"),
        (["stop", "shop/api"], "shop/api"),
        (["restart", "sh op"], "sh op"),
        (["status", "--admin", "https://127.0.0.1:9901"], "https://127.0.0.1:9901"),
        (["reload", "--admin", "127.0.0.1:9901"], "127.0.0.1:9901"),
        (["suspend", "--timeout", "soon"], "soon"),
        (["suspend", "--timeout", "nan"], "nan"),
        (["shutdown", "--timeout=-3"], "-3"),
        (["restart", "shop", "--timeout", "0"], "0"),
    ])
    func badUsageExits64NamingTheValue(arguments: [String], value: String) async throws {
        let run = try await Self.gateway(arguments)
        #expect(run.status == 64, "\(run)")
        #expect(run.stderr.first?.contains("'\(value)'") == true, "\(run.stderr)")
    }

    @Test func badAdminURLFromTheEnvironmentSaysWhereItCameFrom() async throws {
        let run = try await Self.gateway(["status"], environment: ["GATEWAY_ADMIN": "gw:9901"])
        #expect(run.status == 64)
        #expect(run.stderr.first?.contains("'gw:9901'") == true)
        #expect(run.stderr.first?.contains("$GATEWAY_ADMIN") == true)
    }
}

import Foundation
import Testing

@testable import Gateway

/// The admin CLI's pure parts: SCOPE and URL parsing, number formatting, the status table and
/// the operation reports. No process, no socket.
@Suite struct AdminCLIFormattingTests {
    // MARK: SCOPE

    @Test func scopeForms() throws {
        #expect(try AdminScope.parse(nil).get() == .gateway)
        #expect(try AdminScope.parse("shop").get() == .deployment("shop"))
        #expect(try AdminScope.parse("shop-2.eu_west").get() == .deployment("shop-2.eu_west"))
        #expect(try AdminScope.parse("shop/api").get() == .entryPoint(deployment: "shop", entryPoint: "api"))
        #expect(try AdminScope.parse("shop#2").get() == .instance(deployment: "shop", index: 2))
        #expect(try AdminScope.parse("shop#0").get() == .instance(deployment: "shop", index: 0))
        #expect(try AdminScope.parse("shop@127.0.0.1:9001").get() == .backend(deployment: "shop", address: "127.0.0.1:9001"))
        // Written the way the gateway names backends, so the server finds it.
        #expect(try AdminScope.parse("shop@LocalHost:9001").get() == .backend(deployment: "shop", address: "localhost:9001"))
        #expect(try AdminScope.parse("shop@[::1]:9001").get() == .backend(deployment: "shop", address: "[::1]:9001"))
    }

    @Test(arguments: [
        "", "/api", "#2", "@127.0.0.1:1", "shop/", "shop#", "shop#x", "shop#-1", "shop#+1", "shop# 2", "shop#2#3",
        "shop#1234567890", "shop@", "shop@127.0.0.1", "shop@127.0.0.1:0", "shop@127.0.0.1:99999", "shop@::1:80",
        "sh op", "shöp", "shop/a/b", "shop/api#2", "shop/api@127.0.0.1:1", "shop/ap i",
    ])
    func invalidScopesNameTheValue(_ text: String) {
        switch AdminScope.parse(text) {
        case .success(let scope):
            Issue.record("'\(text)' parsed as \(scope)")
        case .failure(let error):
            #expect(error.description.hasPrefix("invalid scope '\(text)': "))
            #expect(error.description.contains("DEPLOYMENT#N"))
        }
    }

    @Test func scopeQueryParameters() {
        #expect(AdminScope.gateway.queryItems.isEmpty)
        #expect(AdminScope.deployment("shop").queryItems.map { "\($0.name)=\($0.value)" } == ["deployment=shop"])
        #expect(
            AdminScope.entryPoint(deployment: "shop", entryPoint: "api").queryItems.map { "\($0.name)=\($0.value)" }
                == ["deployment=shop", "entry_point=api"]
        )
        #expect(
            AdminScope.instance(deployment: "shop", index: 3).queryItems.map { "\($0.name)=\($0.value)" }
                == ["deployment=shop", "instance=3"]
        )
        let backend = AdminScope.backend(deployment: "shop", address: "[::1]:9001")
        #expect(
            AdminClient.requestURI(basePath: "", path: "/suspend", query: backend.queryItems + [("timeout", "2.5")])
                == "/suspend?deployment=shop&backend=%5B%3A%3A1%5D%3A9001&timeout=2.5"
        )
        #expect(AdminClient.requestURI(basePath: "/admin", path: "/resume", query: []) == "/admin/resume")
    }

    @Test func percentEncodingKeepsOnlyUnreservedCharacters() {
        #expect(AdminClient.percentEncode("Az09-._~") == "Az09-._~")
        #expect(AdminClient.percentEncode("a b&c=d/e?f#g%") == "a%20b%26c%3Dd%2Fe%3Ff%23g%25")
        #expect(AdminClient.percentEncode("é") == "%C3%A9")
    }

    @Test func stopAndStartTargets() throws {
        #expect(try AdminScope.parseTarget("shop").get() == .deployment("shop"))
        #expect(try AdminScope.parseTarget("shop#2").get() == .instance(deployment: "shop", index: 2))
        for bad in ["shop/api", "shop@127.0.0.1:1", "", "shop#", "shop#x", "a b"] {
            switch AdminScope.parseTarget(bad) {
            case .success(let scope): Issue.record("'\(bad)' parsed as \(scope)")
            case .failure(let error): #expect(error.description.contains("'\(bad)'"))
            }
        }
        #expect(InstanceAction.stop.path(for: .deployment("shop")) == "/deployments/shop/stop")
        #expect(InstanceAction.start.path(for: .instance(deployment: "shop", index: 2)) == "/deployments/shop/instances/2/start")
    }

    // MARK: --admin URL

    @Test func adminURLs() throws {
        var endpoint = try AdminEndpoint.parse("http://127.0.0.1:9901").get()
        #expect(endpoint == AdminEndpoint(host: "127.0.0.1", port: 9901, basePath: ""))
        #expect(endpoint.hostHeader == "127.0.0.1:9901")
        endpoint = try AdminEndpoint.parse("HTTP://Admin.Local").get()
        #expect(endpoint == AdminEndpoint(host: "admin.local", port: 80, basePath: ""))
        #expect(endpoint.hostHeader == "admin.local")
        endpoint = try AdminEndpoint.parse("http://[::1]:9901/gateway/admin/").get()
        #expect(endpoint == AdminEndpoint(host: "::1", port: 9901, basePath: "/gateway/admin"))
        #expect(endpoint.description == "http://[::1]:9901/gateway/admin")
        #expect(try AdminEndpoint.parse(AdminEndpoint.defaultURL).get().port == 9901)
    }

    @Test(arguments: [
        "https://127.0.0.1:9901", "127.0.0.1:9901", "localhost", "http://", "http://:9901", "http://h:0",
        "http://h:65536", "http://h:x", "http://h:", "http://u@h:1", "http://h:1/?x=1", "http://h:1#top",
        "http://[::1", "http://[zz]:1", "http://h h:1", "ftp://h:1",
    ])
    func invalidAdminURLsNameTheValue(_ text: String) {
        switch AdminEndpoint.parse(text) {
        case .success(let endpoint):
            Issue.record("'\(text)' parsed as \(endpoint)")
        case .failure(let error):
            #expect(error.description.hasPrefix("invalid admin URL '\(text)': "))
        }
    }

    @Test func httpsIsRefusedByName() {
        guard case .failure(let error) = AdminEndpoint.parse("https://gw:9901") else {
            Issue.record("https accepted")
            return
        }
        #expect(error.description.contains("only http:// is supported"))
    }

    // MARK: Numbers

    @Test func uptimes() {
        #expect(AdminFormat.uptime(seconds: 0) == "0s")
        #expect(AdminFormat.uptime(seconds: 0.4) == "0s")
        #expect(AdminFormat.uptime(seconds: 12.5) == "12s")
        #expect(AdminFormat.uptime(seconds: 59.99) == "59s")
        #expect(AdminFormat.uptime(seconds: 60) == "1m")
        #expect(AdminFormat.uptime(seconds: 184) == "3m4s")
        #expect(AdminFormat.uptime(seconds: 3599) == "59m59s")
        #expect(AdminFormat.uptime(seconds: 3600) == "1h")
        #expect(AdminFormat.uptime(seconds: 2 * 3600 + 5 * 60 + 59) == "2h5m")
        #expect(AdminFormat.uptime(seconds: 86399) == "23h59m")
        #expect(AdminFormat.uptime(seconds: 86400) == "1d")
        #expect(AdminFormat.uptime(seconds: 3 * 86400 + 4 * 3600 + 59 * 60) == "3d4h")
        #expect(AdminFormat.uptime(seconds: 400 * 86400) == "400d")
        #expect(AdminFormat.uptime(seconds: nil) == "-")
        #expect(AdminFormat.uptime(seconds: -1) == "-")
        #expect(AdminFormat.uptime(seconds: .nan) == "-")
        #expect(AdminFormat.uptime(seconds: .infinity) == "-")
    }

    @Test func byteCounts() {
        #expect(AdminFormat.bytes(0) == "0 B")
        #expect(AdminFormat.bytes(999) == "999 B")
        #expect(AdminFormat.bytes(1000) == "1.0 kB")
        #expect(AdminFormat.bytes(1536) == "1.5 kB")
        #expect(AdminFormat.bytes(12_345_678) == "12.3 MB")
        // Rounded into the next unit, not shown as 1000.0 kB.
        #expect(AdminFormat.bytes(999_960) == "1.0 MB")
        #expect(AdminFormat.bytes(999_940) == "999.9 kB")
        #expect(AdminFormat.bytes(2_000_000_000) == "2.0 GB")
        #expect(AdminFormat.bytes(Int64.max) == "9.2 EB")
        #expect(AdminFormat.bytes(nil) == "-")
        #expect(AdminFormat.bytes(-5) == "-")
    }

    @Test func cpuShares() {
        #expect(AdminFormat.percent(0) == "0.0%")
        #expect(AdminFormat.percent(0.44) == "0.4%")
        #expect(AdminFormat.percent(0.46) == "0.5%")
        #expect(AdminFormat.percent(112) == "112.0%")
        #expect(AdminFormat.percent(nil) == "-")
        #expect(AdminFormat.percent(.nan) == "-")
    }

    @Test func clientTimeoutFollowsTheServerTimeout() {
        #expect(AdminCommandRunner.clientTimeout(forServerTimeout: nil) == .seconds(900))
        #expect(AdminCommandRunner.clientTimeout(forServerTimeout: 10) == .seconds(40))
        #expect(AdminCommandRunner.clientTimeout(forServerTimeout: 0.5) == .milliseconds(30_500))
        #expect(AdminCommandRunner.clientTimeout(forServerTimeout: 0) == .seconds(30))
        #expect(AdminCommandRunner.clientTimeout(forServerTimeout: -1) == nil)
    }

    @Test func timeoutOptionHasTheServersMaximum() throws {
        try AdminCommandRunner.validateTimeout(31_536_000, allowNegative: false)
        try AdminCommandRunner.validateTimeout(-1e12, allowNegative: true)
        #expect(throws: (any Error).self) { try AdminCommandRunner.validateTimeout(31_536_001, allowNegative: true) }
        do {
            try AdminCommandRunner.validateTimeout(1e8, allowNegative: false)
            Issue.record("1e8 s accepted")
        } catch {
            #expect("\(error)" == "--timeout must be at most 31536000 seconds (365 days), got '100000000'")
        }
    }

    // MARK: Status table

    static let processesJSON = """
        {"processes": [
          {"deployment": "shop", "instance": "shop#1", "index": 1, "pid": 1234, "port": 9101, "state": "READY",
           "reason": "health check passed", "ready": true, "active": 3, "total": 12345, "restarts": 0,
           "crashes": 0, "planned_restarts": 0,
           "uptime_s": 185.2, "rss_bytes": 12345678, "cpu_percent": 0.44, "last_exit": null, "a_newer_field": [1],
           "command": ["gunicorn", "-b", "127.0.0.1:9101", "app:create_app()"]},
          {"deployment": "shop", "instance": "shop#2", "index": 2, "pid": null, "port": null, "state": "BACKOFF",
           "reason": "restarting in 5s", "ready": false, "active": 0, "total": 7, "restarts": 4,
           "crashes": 3, "planned_restarts": 1,
           "uptime_s": null, "rss_bytes": null, "cpu_percent": null,
           "last_exit": "exited with signal 9 (KILL) after 12.4 s", "command": null},
          {"deployment": "shop", "instance": "shop#3", "index": 3, "pid": 1240, "port": 9103, "state": "SUSPENDED",
           "process_state": "READY", "traffic_state": "SUSPENDED", "suspended_by": "backend",
           "reason": "health check passed", "ready": false, "active": 0, "total": 2, "restarts": 2,
           "crashes": 0, "planned_restarts": 2,
           "uptime_s": 5, "rss_bytes": 2048, "cpu_percent": 0, "last_exit": null,
           "command": ["python3", "app.py", "--port", "9103"]}
        ]}
        """

    static func processes() throws -> [AdminAnswer.Process] {
        try AdminJSON.decoder.decode(AdminAnswer.ProcessList.self, from: Array(Self.processesJSON.utf8)).processes
    }

    @Test func decodesProcessesWithNullsAndUnknownFields() throws {
        let processes = try Self.processes()
        #expect(processes.count == 3)
        #expect(processes[0].command == ["gunicorn", "-b", "127.0.0.1:9101", "app:create_app()"])
        #expect(processes[1].crashes == 3)
        #expect(processes[1].plannedRestarts == 1)
        #expect(processes[2].processState == "READY")
        #expect(processes[2].suspendedBy == "backend")
        #expect(processes[0].uptimeS == 185.2)
        #expect(processes[0].rssBytes == 12_345_678)
        #expect(processes[0].lastExit == nil)
        #expect(processes[1].pid == nil)
        #expect(processes[1].lastExit == "exited with signal 9 (KILL) after 12.4 s")
    }

    @Test func tableAlignsColumnsAndShowsDashForNull() throws {
        let lines = ProcessTable.render(try Self.processes())
        // Text columns left-aligned, numbers right-aligned, two spaces between columns.
        #expect(
            lines == [
                "NAME     PID  PORT  STATE      READY  ACTIVE  REQUESTS  CRASHES  PLANNED  UPTIME   MEMORY   CPU  REASON / LAST EXIT",
                "shop#1  1234  9101  READY      yes         3     12345        0        0    3m5s  12.3 MB  0.4%  health check passed",
                "shop#2     -     -  BACKOFF    no          0         7        3        1       -        -     -  "
                    + "restarting in 5s; last exit: exited with signal 9 (KILL) after 12.4 s",
                "shop#3  1240  9103  SUSPENDED  no          0         2        0        2      5s   2.0 kB  0.0%  health check passed",
                "",
                "NAME    COMMAND",
                "shop#1  gunicorn -b 127.0.0.1:9101 'app:create_app()'",
                "shop#3  python3 app.py --port 9103",
            ]
        )
    }

    @Test func reasonColumnIsCutOrLeftOutToFitTheTerminal() throws {
        let processes = try Self.processes()
        let full = ProcessTable.render(processes)
        // Room for part of the reason: every line fits, the long one is cut with "...".
        let cut = ProcessTable.render(processes, width: 130)
        #expect(cut.allSatisfy { $0.count <= 130 })
        let commands = ProcessTable.render(processes, width: 40).drop { !$0.isEmpty }
        #expect(commands.count == 4)
        #expect(commands.allSatisfy { $0.count <= 40 }, "commands are cut to the terminal too")
        #expect(commands.contains("shop#1  gunicorn -b 127.0.0.1:9101 'a..."))
        #expect(cut[0].hasSuffix("REASON / LAST EXIT"))
        #expect(cut[2].hasSuffix("..."))
        #expect(cut[2].count == 130)
        #expect(full[2].hasPrefix(String(cut[2].dropLast(3))))
        // No room for a useful part of it: the column goes, the others stay as they were.
        let narrow = ProcessTable.render(processes, width: 100)
        #expect(!narrow[0].contains("REASON"))
        #expect(narrow[1] == "shop#1  1234  9101  READY      yes         3     12345        0        0    3m5s  12.3 MB  0.4%")
        #expect(narrow.count == 8)
        // Wide enough: the same as with no terminal.
        #expect(ProcessTable.render(processes, width: 500) == full)
    }

    @Test func commandsAreShownAsAShellWouldTakeThem() {
        #expect(ProcessTable.shellQuoted("127.0.0.1:9101") == "127.0.0.1:9101")
        #expect(ProcessTable.shellQuoted("a b") == "'a b'")
        #expect(ProcessTable.shellQuoted("it's") == #"'it'\''s'"#)
        #expect(ProcessTable.shellQuoted("") == "''")
        #expect(ProcessTable.shellQuoted("$HOME") == "'$HOME'")
    }

    @Test func emptyTableSaysSo() {
        #expect(ProcessTable.render([]) == ["the gateway supervises no processes"])
    }

    // MARK: Reports

    @Test func restartReport() throws {
        let json = """
            {"deployment": "shop", "ok": false, "message": "shop#2 did not get ready within 30s",
             "steps": [
               {"instance": "shop#1", "old_pid": 11, "new_pid": 21, "old_port": 9100, "new_port": 9103,
                "drained": true, "drain_ms": 12, "out_of_rotation_ms": 900, "error": null},
               {"instance": "shop#2", "old_pid": 12, "new_pid": null, "old_port": 9101, "new_port": null,
                "drained": false, "drain_ms": 30000.4, "out_of_rotation_ms": null, "error": "not ready within 30s"}
             ]}
            """
        let answer = try AdminJSON.decoder.decode(AdminAnswer.Restart.self, from: Array(json.utf8))
        #expect(
            (answer.steps ?? []).map(AdminReport.restartStep) == [
                "shop#1: pid 11 -> 21, port 9100 -> 9103, drained in 12 ms, out of rotation 900 ms",
                "shop#2: pid 12 -> -, port 9101 -> -, not drained after 30000 ms, failed: not ready within 30s",
            ]
        )
        #expect(
            AdminReport.restartSummary(answer, deployment: "shop")
                == "restart of shop failed: shop#2 did not get ready within 30s"
        )
        let ok = AdminAnswer.Restart(deployment: "shop", ok: true, message: "rolled 3 instances", steps: [])
        #expect(AdminReport.restartSummary(ok, deployment: "shop") == "shop: rolled 3 instances")
    }

    @Test func suspendReport() {
        let drained = AdminAnswer.Suspend(scope: "deployment 'shop'", drained: true, active: 0, state: "SUSPENDED", cancelled: false)
        #expect(
            AdminReport.suspend(drained) == [
                "scope:   deployment 'shop'", "state:   SUSPENDED", "drained: yes", "active:  0",
            ]
        )
        #expect(AdminReport.suspendFailure(drained) == nil)
        let timedOut = AdminAnswer.Suspend(scope: "gateway", drained: false, active: 2, state: "SUSPENDING", cancelled: false)
        #expect(AdminReport.suspendFailure(timedOut) == "gateway did not drain before the timeout: 2 requests still in flight")
        let cancelled = AdminAnswer.Suspend(scope: "gateway", drained: false, active: 1, state: "RUNNING", cancelled: true)
        #expect(AdminReport.suspendFailure(cancelled) == "the suspend of gateway was cancelled by a resume")
    }

    @Test func reloadAndShutdownReports() {
        #expect(AdminReport.reload(AdminAnswer.Reload(ok: true, changes: [])) == ["reloaded: no changes"])
        #expect(
            AdminReport.reload(AdminAnswer.Reload(ok: true, changes: ["deployment 'x' added", "deployment 'shop' rolled (process changed)"]))
                == ["reloaded: 2 changes", "  deployment 'x' added", "  deployment 'shop' rolled (process changed)"]
        )
        #expect(
            AdminReport.shutdown(AdminAnswer.Shutdown(shuttingDown: true, timeoutS: 30))
                == "the gateway is shutting down; requests in flight get up to 30 s"
        )
    }

    @Test func errorMessageIsTheServersOrTheStatus() {
        #expect(AdminHTTPResponse(status: 404, body: Array(#"{"error": "no deployment 'shopx'"}"#.utf8)).errorMessage == "no deployment 'shopx'")
        #expect(AdminHTTPResponse(status: 502, body: Array("Bad Gateway\n<html>".utf8)).errorMessage == "HTTP 502: Bad Gateway")
        #expect(AdminHTTPResponse(status: 503, body: []).errorMessage == "HTTP 503")
    }
}

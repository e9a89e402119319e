import Foundation
import Supervisor
import Testing

@testable import Gateway

/// The `process:` section: the issue's example shape, defaults, and errors that name the key.
struct ProcessConfigTests {
    func parse(_ process: String) throws(ConfigError) -> ProcessSpec? {
        let yaml = """
            listen: 127.0.0.1:8080
            deployments:
              - name: shop
                path_prefix: /
                process:
            \(process.split(separator: "\n").map { "      " + $0 }.joined(separator: "\n"))
            """
        return try ConfigLoader.parse(yaml: yaml, source: "/etc/gw/gateway.yaml").deployments[0].process
    }

    func error(_ process: String) -> ConfigError? {
        do {
            _ = try parse(process)
            return nil
        } catch {
            return error
        }
    }

    @Test func theIssuesExampleParses() throws {
        let spec = try #require(try parse("""
            command: ["python3", "app.py"]
            cwd: /tmp
            env: {MODE: prod}
            instances: 3
            ports: 9100-9199
            stop_signal: TERM
            stop_timeout: 20s
            health: {http: /health, interval: 1s, timeout: 500ms, failures: 3}
            ready_timeout: 30s
            respawn: {delays: [1s, 5s, 10s, 15s, 30s], reset_after: 60s, max_restarts: 10}
            """))
        #expect(spec.command == ["python3", "app.py"])
        #expect(spec.workingDirectory == "/tmp")
        #expect(spec.environment == ["MODE": "prod"])
        #expect(spec.instances == 3)
        #expect(spec.ports == 9100...9199)
        #expect(spec.stopSignal == SIGTERM)
        #expect(spec.stopTimeout == .seconds(20))
        #expect(spec.health == HealthCheckSpec(kind: .http(path: "/health"), interval: .seconds(1), timeout: .milliseconds(500), failures: 3))
        #expect(spec.readyTimeout == .seconds(30))
        #expect(spec.respawn == RespawnPolicy(
            delays: [.seconds(1), .seconds(5), .seconds(10), .seconds(15), .seconds(30)], resetAfter: .seconds(60), maxRestarts: 10))
        #expect(spec.maxUnavailable == 1)
    }

    @Test func defaultsAndARelativeCwd() throws {
        let spec = try #require(try parse("command: [\"gateway\", \"demo-backend\"]\nports: 9100-9101\nstop_signal: SIGINT"))
        #expect(spec.instances == 1)
        #expect(spec.workingDirectory == nil)
        #expect(spec.health.kind == .tcp)
        #expect(spec.respawn.delays == RespawnPolicy.defaultDelays)
        #expect(spec.respawn.maxRestarts == nil)
        #expect(spec.stopSignal == SIGINT)
        // Relative to the configuration file's directory.
        let directory = FileManager.default.temporaryDirectory.path
        let yaml = "listen: 127.0.0.1:8080\ndeployments:\n  - name: a\n    process: {command: [x], ports: 1000-1001, cwd: .}\n"
        let config = try ConfigLoader.parse(yaml: yaml, source: directory + "/gateway.yaml")
        #expect(config.deployments[0].process?.workingDirectory == directory)
    }

    @Test func errorsNameTheKeyAndTheProblem() {
        let cases: [(String, String, String)] = [
            ("command: python3 app.py\nports: 9100-9199", "deployments[0].process.command", "as a list of arguments"),
            ("command: []\nports: 9100-9199", "deployments[0].process.command", "at least the program"),
            ("command: [app]\nports: 9100", "deployments[0].process.ports", "give at least 2 (one spare for a rolling restart)"),
            ("command: [app]\nports: 9100-9101\ninstances: 2", "deployments[0].process.ports", "give at least 3"),
            ("command: [app]\nports: 9199-9100", "deployments[0].process.ports", "the range is empty"),
            ("command: [app]\nports: 70000", "deployments[0].process.ports", "ports 1-65535"),
            ("command: [app]\nports: 9100-9199\nstop_signal: TERMINATE", "deployments[0].process.stop_signal", "expected a signal name"),
            ("command: [app]\nports: 9100-9199\nhealth: {interval: 1s}", "deployments[0].process.health", "http: /path"),
            ("command: [app]\nports: 9100-9199\nhealth: {http: health}", "deployments[0].process.health.http", "such as /health"),
            ("command: [app]\nports: 9100-9199\nrespawn: {delays: [0s]}", "deployments[0].process.respawn.delays[0]", "greater than zero"),
            ("command: [app]\nports: 9100-9199\nenv: {PORT: 1}", "deployments[0].process.env.PORT", "set by the gateway"),
            ("command: [app]\nports: 9100-9199\ncwd: /no/such/dir", "deployments[0].process.cwd", "no such directory"),
            ("command: [app]\nport: 9100-9199", "deployments[0].process.port", "did you mean \"ports\""),
        ]
        for (yaml, keyPath, message) in cases {
            let error = self.error(yaml)
            #expect(error?.keyPath == keyPath, "\(yaml)")
            #expect(error?.message.contains(message) == true, "\(yaml): \(String(describing: error))")
        }
    }

    @Test func aCwdNamedAfterTheInstanceIsCheckedAtSpawnNotAtLoad() throws {
        let spec = try #require(try parse("command: [app, --port, $PORT]\nports: 9100-9199\ncwd: /no/such/$GATEWAY_INSTANCE"))
        // Kept as written: each instance expands it when it is spawned.
        #expect(spec.command == ["app", "--port", "$PORT"])
        #expect(spec.workingDirectory == "/no/such/$GATEWAY_INSTANCE")
        #expect(error("command: [app]\nports: 9100-9199\ncwd: /no/such/$$GATEWAY_INSTANCE")?.message.contains("no such directory") == true)
    }

    @Test func backendsAndProcessExcludeEachOther() throws {
        let yaml = "listen: 127.0.0.1:8080\ndeployments:\n  - name: a\n    backends: [127.0.0.1:1]\n    process: {command: [x], ports: 1000-1001}\n"
        #expect(throws: ConfigError.self) { try ConfigLoader.parse(yaml: yaml, source: "g.yaml") }
        do {
            _ = try ConfigLoader.parse(yaml: yaml, source: "g.yaml")
        } catch {
            #expect(error.message == "give `backends` or `process`, not both")
        }
    }
}

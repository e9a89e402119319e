import Foundation
import NIOHTTP1
import Testing

/// A real gateway process in front of real demo-backend processes, on free loopback ports.
///
/// Each test builds its own, so tests run in parallel without sharing state. Everything started
/// here is a `ChildProcess`, killed and reaped when the harness goes away.
final class GatewayHarness: Sendable {
    let backends: [ChildProcess]
    let backendPorts: [Int]
    let gateway: ChildProcess
    let port: Int
    /// Every listener's port, in the order of `listeners:` (just `port` for a `listen:` config).
    let listenerPorts: [Int]
    let adminPort: Int
    let directory: URL
    /// The loopback address the gateway listens on.
    let host: String
    /// Held for the harness's lifetime so the dead backends' ports stay dead.
    let refusingPorts: [RefusingPort]

    /// - Parameters:
    ///   - backends: how many demo backends to start (named b0, b1, ...).
    ///   - deadBackends: extra backend ports that nothing listens on.
    ///   - yaml: the config; `{listen}`, `{admin}`, `{backends}` (a YAML flow list of every
    ///     backend address, live ones first) and `{backend0}`... are substituted.
    ///   - host: the loopback address the gateway listens on (127.0.0.2, ... stand for other hosts).
    init(backends count: Int = 1, deadBackends: Int = 0, yaml: String, host: String = "127.0.0.1") async throws {
        // Every server binds port 0 and says which port it got, so parallel tests never race
        // for a port that an outgoing connection might take in the meantime.
        var processes: [ChildProcess] = []
        var ports: [Int] = []
        for index in 0..<count {
            let backend = try ChildProcess.gateway(["demo-backend", "--port", "0", "--name", "b\(index)"])
            let line = try await backend.waitForOutput(containing: "listening on", timeout: .seconds(20))
            processes.append(backend)
            ports.append(try Self.port(in: line, after: "listening on 127.0.0.1:"))
        }
        let refusingPorts = try (0..<deadBackends).map { _ in try RefusingPort() }
        ports += refusingPorts.map(\.port)

        var text = TestAdmin.withAdminUser(yaml)
            .replacingOccurrences(of: "{listen}", with: "\(host):0")
            .replacingOccurrences(of: "{admin}", with: "\(host):0")
            .replacingOccurrences(of: "{backends}", with: "[" + ports.map { "127.0.0.1:\($0)" }.joined(separator: ", ") + "]")
        for (index, backendPort) in ports.enumerated() {
            text = text.replacingOccurrences(of: "{backend\(index)}", with: "127.0.0.1:\(backendPort)")
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gateway-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let configPath = directory.appendingPathComponent("gateway.yaml")
        try text.write(to: configPath, atomically: true, encoding: .utf8)

        let gateway = try ChildProcess.gateway(["run", "--config", configPath.path])
        let line = try await gateway.waitForOutput(containing: "gateway listening", timeout: .seconds(20))
        let port = try Self.port(in: line, after: "listen=\(host):")
        let adminPort = try Self.port(in: line, after: "admin=\(host):")
        // Logged one per listener before "gateway listening".
        let listenerPorts = try gateway.stderrLines.filter { $0.contains("listener ready") }.map {
            try Self.port(in: $0, after: "listen=\(host):")
        }

        self.listenerPorts = listenerPorts
        self.refusingPorts = refusingPorts
        self.backends = processes
        self.backendPorts = ports
        self.gateway = gateway
        self.port = port
        self.adminPort = adminPort
        self.directory = directory
        self.host = host
    }

    deinit {
        try? FileManager.default.removeItem(at: directory)
    }

    /// The port number that follows `marker` in a log line.
    static func port(in line: String, after marker: String) throws -> Int {
        guard let range = line.range(of: marker) else { throw TestSupportError("no \(marker) in: \(line)") }
        let digits = line[range.upperBound...].prefix { $0.isNumber }
        guard let port = Int(digits), port > 0 else { throw TestSupportError("no port after \(marker) in: \(line)") }
        return port
    }

    /// The common single-deployment config with optional limits.
    static func simpleConfig(globalLimit: Int? = nil, deploymentLimit: Int? = nil, extra: String = "") -> String {
        var yaml = "listen: {listen}\nadmin:\n  listen: {admin}\nshutdown_timeout: 10s\n"
        if let globalLimit { yaml += "limits:\n  max_requests: \(globalLimit)\n" }
        yaml += extra
        yaml += "deployments:\n  - name: shop\n    path_prefix: /\n"
        if let deploymentLimit { yaml += "    max_requests: \(deploymentLimit)\n" }
        yaml += "    backends: {backends}\n"
        return yaml
    }

    // MARK: Requests

    func get(_ path: String, headers: [(String, String)] = []) async throws -> TestHTTPResponse {
        try await TestHTTPClient.get(port: port, path: path, host: host, headers: headers)
    }

    /// An admin request as the harness's `admin` user (`TestAdmin.token`).
    func admin(_ method: HTTPMethod, _ path: String, token: String? = TestAdmin.token, headers: [(String, String)] = []) async throws
        -> TestHTTPResponse
    {
        try await TestHTTPClient.withConnection(port: adminPort, host: host) { client in
            try await client.request(method, path, headers: (token.map { [("authorization", "Bearer \($0)")] } ?? []) + headers)
        }
    }

    func adminJSON(_ method: HTTPMethod, _ path: String) async throws -> (status: Int, json: [String: Any]) {
        let response = try await admin(method, path)
        return (Int(response.status.code), Self.json(response))
    }

    /// The response body as a JSON object (empty when it is not one).
    static func json(_ response: TestHTTPResponse) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any] ?? [:]
    }

    func stats() async throws -> [String: Any] {
        try await adminJSON(.GET, "/stats").json
    }

    /// The `active` count of the whole gateway, as `/stats` reports it.
    func activeRequests() async throws -> Int {
        let stats = try await stats()
        return (stats["global"] as? [String: Any])?["active"] as? Int ?? -1
    }

    /// Polls `/stats` until `condition` holds (every 20 ms, bounded): how a test waits for
    /// requests to be in flight without sleeping and hoping.
    @discardableResult
    func waitForStats(
        timeout: Duration = .seconds(10),
        _ what: String,
        _ condition: ([String: Any]) -> Bool
    ) async throws -> [String: Any] {
        try await poll(timeout: timeout, what, fetch: { try await self.stats() }, until: condition)
    }

    /// Fetches every 20 ms until `condition` holds (bounded by `timeout`) and returns what
    /// satisfied it; the error shows the last value fetched.
    func poll<Value>(
        timeout: Duration, _ what: String, fetch: () async throws -> Value, until condition: (Value) -> Bool
    ) async throws -> Value {
        let deadline = ContinuousClock.now + timeout
        var last = try await fetch()
        while !condition(last) {
            guard ContinuousClock.now < deadline else {
                throw TestSupportError("timed out waiting for \(what); last: \(last)\n\(gateway.outputDescription)")
            }
            try await Task.sleep(for: .milliseconds(20))
            last = try await fetch()
        }
        return last
    }

    /// Returns the stats document that showed it, so a test can look at the same moment.
    @discardableResult
    func waitForActive(_ count: Int) async throws -> [String: Any] {
        try await waitForStats("\(count) requests in flight") { stats in
            (stats["global"] as? [String: Any])?["active"] as? Int == count
        }
    }

    /// The stats object of entry point `name` of the first deployment.
    static func entryPoint(_ stats: [String: Any], _ name: String, deployment: String = "shop") -> [String: Any] {
        let deployments = stats["deployments"] as? [[String: Any]] ?? []
        let d = deployments.first { $0["name"] as? String == deployment } ?? [:]
        let eps = d["entry_points"] as? [[String: Any]] ?? []
        return eps.first { $0["name"] as? String == name } ?? [:]
    }
}

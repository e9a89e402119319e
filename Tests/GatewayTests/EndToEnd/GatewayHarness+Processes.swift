import Foundation
import NIOHTTP1
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Helpers for tests of supervised deployments: the process table and the processes behind it.
extension GatewayHarness {
    /// `GET /processes` rows.
    func processes() async throws -> [[String: Any]] {
        try await adminJSON(.GET, "/processes").json["processes"] as? [[String: Any]] ?? []
    }

    /// Polls `/processes` until `condition` holds (every 20 ms, bounded) and returns the rows.
    @discardableResult
    func waitForProcesses(
        timeout: Duration = .seconds(20), _ what: String, _ condition: ([[String: Any]]) -> Bool
    ) async throws -> [[String: Any]] {
        try await poll(timeout: timeout, what, fetch: { try await self.processes() }, until: condition)
    }

    /// Waits until `count` instances of `deployment` are READY and returns them.
    @discardableResult
    func waitForReady(_ count: Int, deployment: String = "shop", timeout: Duration = .seconds(20)) async throws -> [[String: Any]] {
        try await waitForProcesses(timeout: timeout, "\(count) READY instances of \(deployment)") { rows in
            rows.filter { $0["deployment"] as? String == deployment && $0["state"] as? String == "READY" && $0["ready"] as? Bool == true }
                .count == count
        }.filter { $0["deployment"] as? String == deployment && $0["state"] as? String == "READY" }
    }

    /// A port range for supervised instances that parallel tests are unlikely to share.
    static func portRange(size: Int = 40) -> String {
        let base = Int.random(in: 20_000...55_000)
        return "\(base)-\(base + size - 1)"
    }

    /// A gateway in a fleet (membership in `etcd`, prefix /t/) running `instances` demo backends
    /// as deployment shop, published in etcd with `publish`.
    static func etcdSupervisedConfig(_ etcd: EtcdServer, instances: Int = 2, publish: Bool = false) -> String {
        """
        listen: {listen}
        admin:
          listen: {admin}
        shutdown_timeout: 10s
        membership:
          etcd: {endpoints: [\(etcd.endpoint)], prefix: /t/}
        deployments:
          - name: shop
            publish: \(publish)
            process:
              command: ["gateway", "demo-backend"]
              instances: \(instances)
              ports: \(portRange())
              stop_timeout: 5s
              health: {http: /health, interval: 200ms, timeout: 500ms, failures: 2}
              ready_timeout: 15s
        """
    }

    /// A supervised deployment running the demo backend.
    static func supervisedConfig(
        instances: Int, ports: String = portRange(), extraProcess: String = "", extraTop: String = "",
        name: String = "shop", command: String = "[\"gateway\", \"demo-backend\", \"--log-requests\"]"
    ) -> String {
        """
        listen: {listen}
        admin:
          listen: {admin}
        shutdown_timeout: 10s
        \(extraTop)
        deployments:
          - name: \(name)
            path_prefix: /
            process:
              command: \(command)
              instances: \(instances)
              ports: \(ports)
              stop_timeout: 5s
              health: {http: /health, interval: 200ms, timeout: 500ms, failures: 2}
              ready_timeout: 15s
              respawn: {delays: [200ms, 400ms], reset_after: 60s}
        \(extraProcess)
        """
    }
}

/// Whether a process still exists (a zombie counts as gone: it has exited, only its parent has
/// not collected it, and once the gateway is dead that parent is init).
func processIsAlive(_ pid: Int32) -> Bool {
    guard kill(pid, 0) == 0 else { return false }
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return false }
    let state = stat[stat.index(after: close)...].dropFirst().first
    return state != "Z" && state != "X"
}

/// Polls until none of `pids` is alive (bounded); returns those still alive.
func waitUntilGone(_ pids: [Int32], timeout: Duration = .seconds(10)) async -> [Int32] {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        let alive = pids.filter(processIsAlive)
        if alive.isEmpty { return [] }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return pids.filter(processIsAlive)
}

/// A bounded mixed load through the gateway: GETs, slow GETs (`/sleep?ms=300`) and POSTs with a
/// body that must come back whole. Each request uses its own connection, so what is measured is
/// the gateway's behaviour, not a client's keep-alive handling.
final class MixedLoad: Sendable {
    struct Failure: Sendable, CustomStringConvertible {
        var request: String
        var problem: String
        var description: String { "\(request): \(problem)" }
    }

    private struct State {
        var ok = 0
        var failures: [Failure] = []
    }

    private let state = Mutex(State())
    private let stopFlag = Atomic<Bool>(false)
    private let port: Int
    private let host: String

    init(port: Int, host: String = "127.0.0.1") {
        self.port = port
        self.host = host
    }

    var succeeded: Int { state.withLock { $0.ok } }
    var failures: [Failure] { state.withLock { $0.failures } }

    func stop() { stopFlag.store(true, ordering: .relaxed) }

    /// Runs `workers` loops until `stop()` or `limit` (time), each request bounded by its own timeout.
    func run(workers: Int, limit: Duration = .seconds(60)) async {
        let deadline = ContinuousClock.now + limit
        await withTaskGroup(of: Void.self) { group in
            for worker in 0..<workers {
                group.addTask {
                    var iteration = 0
                    while !self.stopFlag.load(ordering: .relaxed), ContinuousClock.now < deadline, iteration < 100_000 {
                        iteration += 1
                        await self.one(kind: (worker + iteration) % 3, iteration: iteration)
                    }
                }
            }
        }
    }

    private func one(kind: Int, iteration: Int) async {
        let label: String
        do {
            let response: TestHTTPResponse
            switch kind {
            case 0:
                label = "GET /"
                response = try await TestHTTPClient.get(port: port, path: "/", host: host, timeout: .seconds(20))
            case 1:
                label = "GET /sleep?ms=300"
                response = try await TestHTTPClient.get(port: port, path: "/sleep?ms=300", host: host, timeout: .seconds(20))
            default:
                label = "POST /echo"
                let body = Array("payload-\(iteration)-".utf8) + [UInt8](repeating: UInt8(ascii: "x"), count: 4096)
                response = try await TestHTTPClient.withConnection(port: port, host: host, timeout: .seconds(20)) { client in
                    try await client.request(.POST, "/echo", body: body)
                }
                if response.status == .ok && response.body != body {
                    record(Failure(request: label, problem: "echo came back with \(response.body.count) bytes, not the \(body.count) sent"))
                    return
                }
            }
            if response.status == .ok {
                state.withLock { $0.ok += 1 }
            } else {
                record(Failure(request: label, problem: "status \(response.status.code): \(String(decoding: response.body.prefix(200), as: UTF8.self))"))
            }
        } catch {
            record(Failure(request: kind == 0 ? "GET /" : kind == 1 ? "GET /sleep" : "POST /echo", problem: "\(error)"))
        }
    }

    private func record(_ failure: Failure) {
        state.withLock { $0.failures.append(failure) }
    }
}

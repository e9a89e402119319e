import Foundation
import Synchronization

/// A real etcd (Debian's etcd-server) for one test: a single member on free loopback ports, its
/// data in a temporary directory, killed and reaped by `stop()` or when it goes away. `restart()`
/// starts it again on the same ports and data, as after an outage.
final class EtcdServer: Sendable {
    let clientPort: Int
    let peerPort: Int
    let directory: URL
    private let process: Mutex<ChildProcess?>

    var endpoint: String { "127.0.0.1:\(clientPort)" }

    static func start() async throws -> EtcdServer {
        let server = try EtcdServer()
        try await server.launch()
        return server
    }

    private init() throws {
        clientPort = try freePort()
        peerPort = try freePort()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("gateway-test-etcd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        process = Mutex(nil)
    }

    private func launch() async throws {
        let client = "http://127.0.0.1:\(clientPort)"
        let peer = "http://127.0.0.1:\(peerPort)"
        let child = try ExternalTool.start("etcd", [
            "--name", "m1", "--data-dir", directory.appendingPathComponent("data").path,
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", "m1=\(peer)", "--log-level", "warn",
        ])
        process.withLock { $0 = child }
        try await waitForPort(clientPort, timeout: .seconds(20))
        // The port opens before the member has a leader; a write proves it serves.
        let deadline = ContinuousClock.now + .seconds(20)
        while true {
            let result = try await ExternalTool.run("etcdctl", ["--endpoints", endpoint, "put", "/etcd-server-ready", "1"], timeout: .seconds(10))
            if result.status == 0 { return }
            guard ContinuousClock.now < deadline else { throw TestSupportError("etcd did not serve within 20 s: \(result.output)\n\(child.outputDescription)") }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    func put(_ key: String, _ value: String) async throws {
        let result = try await ExternalTool.run("etcdctl", ["--endpoints", endpoint, "put", key, value])
        guard result.status == 0 else { throw TestSupportError("etcdctl put \(key) failed: \(result.output)") }
    }

    func delete(_ key: String) async throws {
        let result = try await ExternalTool.run("etcdctl", ["--endpoints", endpoint, "del", key])
        guard result.status == 0 else { throw TestSupportError("etcdctl del \(key) failed: \(result.output)") }
    }

    /// SIGKILL, as a crash; the data stays for `restart()`.
    func kill() {
        process.withLock { child in
            child?.killAndReap()
            child = nil
        }
    }

    func restart() async throws {
        kill()
        try await launch()
    }

    func stop() {
        kill()
        try? FileManager.default.removeItem(at: directory)
    }

    deinit {
        process.withLock { $0?.killAndReap() }
        try? FileManager.default.removeItem(at: directory)
    }
}

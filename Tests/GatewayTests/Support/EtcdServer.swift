import Foundation
import Synchronization

/// A real etcd (Debian's etcd-server) for one test: one member, or a cluster of several, on free
/// loopback ports, its data in a temporary directory, killed and reaped by `stop()` or when it
/// goes away. Members can be killed (SIGKILL, as a crash) and started again on the same ports and
/// data, as after an outage.
final class EtcdServer: Sendable {
    struct Member: Sendable {
        var name: String
        var clientPort: Int
        var peerPort: Int
    }

    let members: [Member]
    let directory: URL
    private let processes: Mutex<[ChildProcess?]>

    /// Every member's client address, comma-separated (etcdctl's `--endpoints`, and a YAML flow
    /// list's items).
    var endpoint: String { members.map { "127.0.0.1:\($0.clientPort)" }.joined(separator: ",") }

    static func start(members count: Int = 1) async throws -> EtcdServer {
        let server = try EtcdServer(count: count)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<count { group.addTask { try await server.launch(index) } }
            try await group.waitForAll()
        }
        try await server.waitUntilServing()
        return server
    }

    private init(count: Int) throws {
        members = try (0..<count).map { Member(name: "m\($0)", clientPort: try freePort(), peerPort: try freePort()) }
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("gateway-test-etcd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        processes = Mutex(Array(repeating: nil, count: count))
    }

    private func launch(_ index: Int) async throws {
        let member = members[index]
        let client = "http://127.0.0.1:\(member.clientPort)"
        let peer = "http://127.0.0.1:\(member.peerPort)"
        let cluster = members.map { "\($0.name)=http://127.0.0.1:\($0.peerPort)" }.joined(separator: ",")
        let child = try ExternalTool.start("etcd", [
            "--name", member.name, "--data-dir", directory.appendingPathComponent(member.name).path,
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", cluster, "--initial-cluster-state", "new", "--log-level", "warn",
        ])
        processes.withLock { $0[index] = child }
        try await waitForPort(member.clientPort, timeout: .seconds(20))
    }

    /// The ports open before the cluster has a leader; a write proves it serves.
    private func waitUntilServing() async throws {
        let deadline = ContinuousClock.now + .seconds(20)
        while true {
            let result = try await ExternalTool.run("etcdctl", ["--endpoints", endpoint, "put", "/etcd-server-ready", "1"], timeout: .seconds(10))
            if result.status == 0 { return }
            guard ContinuousClock.now < deadline else { throw TestSupportError("etcd did not serve within 20 s: \(result.output)") }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// The client addresses of the members running now.
    var liveEndpoint: String {
        let up = processes.withLock { list in list.indices.filter { list[$0] != nil } }
        return up.map { "127.0.0.1:\(members[$0].clientPort)" }.joined(separator: ",")
    }

    func put(_ key: String, _ value: String) async throws {
        try await etcdctl(["put", key, value])
    }

    func delete(_ key: String) async throws {
        try await etcdctl(["del", key])
    }

    /// Through the members that run; retried (at most 10 s) while a cluster that lost its leader
    /// elects another.
    private func etcdctl(_ arguments: [String]) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while true {
            let result = try await ExternalTool.run(
                "etcdctl", ["--endpoints", liveEndpoint, "--command-timeout", "2s"] + arguments, timeout: .seconds(10))
            if result.status == 0 { return }
            guard ContinuousClock.now < deadline else { throw TestSupportError("etcdctl \(arguments) failed: \(result.output)") }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// SIGKILL one member (all of them without an index), as a crash; the data stays.
    func kill(_ index: Int? = nil) {
        processes.withLock { list in
            for i in list.indices where index == nil || index == i {
                list[i]?.killAndReap()
                list[i] = nil
            }
        }
    }

    /// Starts the members that are down again, on their ports and data.
    func restart() async throws {
        let down = processes.withLock { list in list.indices.filter { list[$0] == nil } }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in down { group.addTask { try await self.launch(index) } }
            try await group.waitForAll()
        }
        try await waitUntilServing()
    }

    func stop() {
        kill()
        try? FileManager.default.removeItem(at: directory)
    }

    deinit {
        processes.withLock { list in list.forEach { $0?.killAndReap() } }
        try? FileManager.default.removeItem(at: directory)
    }
}

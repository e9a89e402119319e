import Foundation
import Glibc
import Testing

/// The gateway as a service manager runs it: as an ordinary user, without any capability. The
/// rest of the suite may run as root (CI does), which hides anything that needs privileges: the
/// proxy once asked for SO_DEBUG (`socketOption(.tcp_nodelay)` is SOL_SOCKET level, where option
/// 1 is SO_DEBUG, which needs CAP_NET_ADMIN), so for an ordinary user every accepted connection
/// and every connection to a backend failed its setup and was closed.
@Suite(.timeLimit(.minutes(1)))
struct UnprivilegedEndToEndTests {
    @Test func anUnprivilegedGatewayProxiesToItsSupervisedInstances() async throws {
        // Everything the unprivileged user needs, readable by it: the binary, the configuration.
        let directory = URL(fileURLWithPath: "/tmp").appendingPathComponent("gateway-unprivileged-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        defer { try? FileManager.default.removeItem(at: directory) }
        let binary = directory.appendingPathComponent("gateway").path
        try FileManager.default.copyItem(atPath: GatewayBinary.path, toPath: binary)
        chmod(binary, 0o755)
        let (proxy, admin) = (try freePort(), try freePort())
        let config = directory.appendingPathComponent("gateway.yaml")
        try TestAdmin.withAdminUser(GatewayHarness.supervisedConfig(instances: 1))
            .replacingOccurrences(of: "{listen}", with: "127.0.0.1:\(proxy)")
            .replacingOccurrences(of: "{admin}", with: "127.0.0.1:\(admin)")
            .write(to: config, atomically: true, encoding: .utf8)
        chmod(config.path, 0o644)

        // As root, drop to nobody; otherwise this process is unprivileged already.
        let command = ["run", "--config", config.path]
        let gateway = getuid() == 0
            ? try ChildProcess(
                executable: "/usr/bin/setpriv",
                arguments: ["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", binary] + command,
                environment: ["HOME": "/tmp"])
            : try ChildProcess(executable: binary, arguments: command)
        try await gateway.waitForOutput(containing: "joined the rotation", timeout: .seconds(20))
        let response = try await TestHTTPClient.get(port: proxy, path: "/", timeout: .seconds(5))
        #expect(response.status == .ok, "\(gateway.outputDescription)")
        #expect(String(decoding: response.body, as: UTF8.self).contains("shop#1"))
        gateway.terminate(signal: SIGTERM)
        #expect(try await gateway.waitForExit(timeout: .seconds(20)) == 0)
    }
}

import Foundation
import Testing

@testable import Gateway

/// The `admin:` keys: users and their tokens' hashes, the socket, its admins, the browser names.
@Suite struct AdminConfigTests {
    static let base = "listen: 127.0.0.1:8080\ndeployments:\n  - {name: app, backends: [127.0.0.1:9001]}\n"
    static let hash = TokenDigest(of: "gw_x").hex

    func parse(_ admin: String) throws(ConfigError) -> AdminConfig {
        try ConfigLoader.parse(yaml: Self.base + "admin:\n" + admin, source: "/etc/gateway/gateway.yaml").admin
    }

    func error(_ admin: String) -> String {
        do {
            _ = try parse(admin)
            return "accepted"
        } catch {
            return error.description
        }
    }

    @Test func everyKey() throws {
        let admin = try parse(
            """
              listen: 127.0.0.1:9901
              socket: run/admin.sock
              socket_admins: [root, 1234]
              users:
                - {name: ci, token_sha256: \(Self.hash), level: operator}
              public_metrics: true
              hosts: [Gateway.Internal]
              session_timeout: 1h
            """)
        #expect(admin.socket == "/etc/gateway/run/admin.sock")
        #expect(admin.socketAdmins == [SocketAdmin(uid: 0, name: "root"), SocketAdmin(uid: 1234, name: "1234")])
        #expect(admin.users == [AdminUser(name: "ci", tokenDigest: TokenDigest(of: "gw_x"), level: .operator)])
        #expect(admin.publicMetrics)
        #expect(admin.hosts == ["gateway.internal"])
        #expect(admin.sessionTimeout == .seconds(3600))
    }

    @Test func tokenFileHoldsTheHash() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("admin-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("ci.sha256")
        try (Self.hash.uppercased() + "\n").write(to: file, atomically: true, encoding: .utf8)
        let admin = try parse("  users:\n    - {name: ci, token_file: \(file.path), level: admin}\n")
        #expect(admin.users.first?.tokenDigest == TokenDigest(of: "gw_x"))
        try "gw_x\n".write(to: file, atomically: true, encoding: .utf8)
        #expect(error("  users:\n    - {name: ci, token_file: \(file.path), level: admin}\n").contains("must hold the token's SHA-256 as 64 hex digits (not the token itself)"))
        #expect(error("  users:\n    - {name: ci, token_file: /nonexistent/x, level: admin}\n").contains("cannot read the token file"))
    }

    @Test func badValuesNameTheProblem() {
        #expect(error("  users:\n    - {name: ci, token_sha256: abc, level: admin}\n").contains("expected the token's SHA-256 as 64 hex digits"))
        #expect(error("  users:\n    - {name: ci, token_sha256: \(Self.hash), level: root}\n").contains("expected one of viewer, operator, admin"))
        #expect(error("  users:\n    - {name: ci, level: admin}\n").contains("needs token_sha256 or token_file"))
        #expect(error("  users:\n    - {name: 'a b', token_sha256: \(Self.hash), level: admin}\n").contains("a user name has 1 to 64"))
        #expect(
            error("  users:\n    - {name: a, token_sha256: \(Self.hash), level: admin}\n    - {name: a, token_sha256: \(TokenDigest(of: "y").hex), level: viewer}\n")
                .contains("listed twice"))
        #expect(
            error("  users:\n    - {name: a, token_sha256: \(Self.hash), level: admin}\n    - {name: b, token_sha256: \(Self.hash), level: viewer}\n")
                .contains("have the same token"))
        #expect(error("  socket_admins: [no-such-user-here]\n").contains("no local user \"no-such-user-here\""))
        #expect(error("  socket: /" + String(repeating: "x", count: 120) + "\n").contains("at most 107"))
        #expect(error("  public_metrics: yes\n").contains("expected true or false"))
        #expect(error("  userz: []\n").contains("users"))
    }
}

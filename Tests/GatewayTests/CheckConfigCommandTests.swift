import Foundation
import Testing

/// `gateway check-config` as an operator runs it: the real binary on real files.
@Suite struct CheckConfigCommandTests {
    /// Writes `text` to a fresh file in a directory of its own and returns the path; the caller
    /// removes the directory.
    static func write(_ text: String, name: String = "gateway.yaml") throws -> (path: String, directory: URL) {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("check-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let file = directory.appendingPathComponent(name)
        try Data(text.utf8).write(to: file)
        return (file.path, directory)
    }

    @Test func goodFileSaysOk() async throws {
        let (path, directory) = try Self.write(
            """
            listen: 127.0.0.1:8080
            deployments:
              - name: shop
                entry_points:
                  - {name: api, path_prefix: /api/}
                  - {name: default, path_prefix: /}
                backends: [127.0.0.1:9001, 127.0.0.1:9002]
              - name: blog
                hosts: [blog.local]
                backends: [127.0.0.1:9003]
            """
        )
        defer { try? FileManager.default.removeItem(at: directory) }
        let process = try ChildProcess.gateway(["check-config", path])
        #expect(try await process.waitForExit() == 0)
        try await process.waitForOutputToEnd()
        #expect(process.stdoutLines == ["\(path): ok (2 deployments, 3 entry points, 3 backends)"])
        #expect(process.stderrLines.isEmpty)
    }

    @Test func unreadableCertificateIsReportedWithItsPath() async throws {
        let (path, directory) = try Self.write(
            """
            listeners:
              - listen: 127.0.0.1:8443
                tls: {cert: certs/site.pem, key: certs/site.key}
            deployments:
              - name: shop
                backends: [127.0.0.1:9001]
            """
        )
        defer { try? FileManager.default.removeItem(at: directory) }
        let process = try ChildProcess.gateway(["check-config", path])
        #expect(try await process.waitForExit() == 1)
        try await process.waitForOutputToEnd()
        let certificate = directory.appendingPathComponent("certs/site.pem").path
        #expect(
            process.stderrLines == ["\(path): TLS certificate \(certificate): cannot read: No such file or directory"],
            "\(process.stderrLines)")
    }

    @Test func badFileNamesFileLineAndKey() async throws {
        let (path, directory) = try Self.write(
            """
            listen: 127.0.0.1:8080
            deployments:
              - name: shop
                entry_points:
                  - name: api
                    path_prefix: /api/
                    max_requests: abc
                backends: [127.0.0.1:9001]
            """
        )
        defer { try? FileManager.default.removeItem(at: directory) }
        let process = try ChildProcess.gateway(["check-config", path])
        #expect(try await process.waitForExit() == 1)
        try await process.waitForOutputToEnd()
        #expect(
            process.stderrLines
                == ["\(path):7:23: deployments[0].entry_points[0].max_requests: expected a positive integer, got \"abc\""]
        )
        #expect(process.stdoutLines.isEmpty)
    }

    @Test func variablesThatAreNotExpandedAreAWarningNotAnError() async throws {
        let (path, directory) = try Self.write(
            """
            listen: 127.0.0.1:8080
            deployments:
              - name: app
                process:
                  command: ["app", "--home", "$HOME", "--bind", "127.0.0.1:$PORT", "${GATEWAY_INSTANCE}", "$$PATH"]
                  cwd: /tmp/${USER}/$GATEWAY_INSTANCE
                  ports: 9100-9101
              - name: script
                path_prefix: /script/
                process:
                  command: ["sh", "-c", "exec app --home $HOME --port $PORT"]
                  ports: 9102-9103
            """
        )
        defer { try? FileManager.default.removeItem(at: directory) }
        let process = try ChildProcess.gateway(["check-config", path])
        #expect(try await process.waitForExit() == 0)
        try await process.waitForOutputToEnd()
        #expect(process.stdoutLines == ["\(path): ok (2 deployments, 2 entry points, 0 backends)"])
        let only = "(only $PORT, ${PORT}, $GATEWAY_INSTANCE and $GATEWAY_DEPLOYMENT are); use `sh -c` for shell expansion"
        #expect(
            process.stderrLines == [
                "\(path): warning: deployments[0].process.command[2]: $HOME is not expanded \(only)",
                "\(path): warning: deployments[0].process.cwd: $USER is not expanded \(only)",
            ], "\(process.stderrLines)")
    }

    @Test func missingFile() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("absent-\(UUID().uuidString).yaml").path
        let process = try ChildProcess.gateway(["check-config", path])
        #expect(try await process.waitForExit() == 1)
        let line = try await process.waitForOutput(containing: path, in: .stderr)
        #expect(line == "\(path): cannot open: No such file or directory")
    }
}

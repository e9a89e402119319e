import Foundation

/// Runs a client from Debian's packages (curl, nghttp, h2load, openssl, python3) to the end and
/// collects its output. `.ci/run` installs them; a missing one fails the test with its package.
enum ExternalTool {
    struct Result {
        var status: Int32
        var stdout: [String]
        var stderr: [String]
        var output: String { (stdout + stderr).joined(separator: "\n") }
    }

    static let packages = [
        "curl": "curl", "nghttp": "nghttp2-client", "h2load": "nghttp2-client", "openssl": "openssl", "python3": "python3",
        "etcd": "etcd-server", "etcdctl": "etcd-client",
    ]

    static func path(_ name: String) throws -> String {
        for directory in ["/usr/bin", "/usr/local/bin", "/bin"] {
            let candidate = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw TestSupportError("\(name) is not installed (Debian package \(packages[name] ?? name); `.ci/run` installs it)")
    }

    /// Starts the tool and waits for it to exit and close its output, within `timeout`.
    static func run(_ name: String, _ arguments: [String], timeout: Duration = .seconds(30)) async throws -> Result {
        let process = try start(name, arguments)
        let status = try await process.waitForExit(timeout: timeout)
        try await process.waitForOutputToEnd()
        return Result(status: status, stdout: process.stdoutLines, stderr: process.stderrLines)
    }

    static func start(_ name: String, _ arguments: [String]) throws -> ChildProcess {
        try ChildProcess(executable: try path(name), arguments: arguments)
    }
}

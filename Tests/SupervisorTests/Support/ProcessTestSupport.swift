import Foundation
import Glibc
@testable import Supervisor

/// Polls `condition` every 20 ms until it holds or `timeout` passes; every wait in these tests is
/// bounded so a regression fails instead of hanging the run.
func eventually(within timeout: Duration, _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while true {
        if condition() { return true }
        if ContinuousClock.now >= deadline { return false }
        try? await Task.sleep(for: .milliseconds(20))
    }
}

/// Whether `pid` no longer runs. A zombie counts as gone: an orphan is reaped by whatever init
/// the container has, and not necessarily at once.
func isGone(_ pid: Int32) -> Bool {
    if kill(pid, 0) == -1 && errno == ESRCH { return true }
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")")
    else { return true }
    return stat[stat.index(after: close)...].split(separator: " ").first == "Z"
}

/// Test-only cleanup: kills a pid this test spawned (by its pid, never by name).
func killIfAlive(_ pid: Int32?) {
    guard let pid, pid > 1, !isGone(pid) else { return }
    _ = kill(pid, SIGKILL)
}

/// The environment children get in tests: a PATH and nothing else, so tests also show that the
/// child's environment is exactly the request's.
let testEnvironment = ["PATH": "/usr/local/bin:/usr/bin:/bin"]

func shell(_ script: String, name: String = "t#1", in directory: String? = nil,
           environment: [String: String] = testEnvironment) -> SpawnRequest {
    SpawnRequest(name: name, arguments: ["/bin/sh", "-c", script],
                 workingDirectory: directory, environment: environment)
}

/// A fresh directory under the system temporary directory, resolved (no symlinks), so `pwd` in
/// a child prints exactly this.
func makeTemporaryDirectory() throws -> String {
    let template = FileManager.default.temporaryDirectory.resolvingSymlinksInPath()
        .appendingPathComponent("supervisor-tests.XXXXXX").path
    var bytes = Array(template.utf8CString)
    guard mkdtemp(&bytes) != nil else { throw POSIXError(POSIXErrorCode(rawValue: errno)!) }
    return String(decoding: bytes.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Where the built `gateway` executable is, for the tests of `_launch` and `_watchdog`.
///
/// `swift build --build-tests` builds it (GatewayTests depends on it) beside the test runner,
/// which on Linux is `.build/<triple>/debug/gatewayPackageTests.xctest`; `$GATEWAY_BINARY` wins,
/// and the package's `.build/debug` is the fallback.
enum GatewayExecutable {
    static let path: String? = {
        var candidates: [String] = []
        if let override = ProcessInfo.processInfo.environment["GATEWAY_BINARY"], !override.isEmpty {
            candidates.append(override)
        }
        let runner = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        candidates.append(runner.deletingLastPathComponent().appendingPathComponent("gateway").path)
        let packageRoot = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent()  // Support
            .deletingLastPathComponent()  // SupervisorTests
            .deletingLastPathComponent()  // Tests
            .deletingLastPathComponent()
        candidates.append(packageRoot.appendingPathComponent(".build/debug/gateway").path)
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()
}

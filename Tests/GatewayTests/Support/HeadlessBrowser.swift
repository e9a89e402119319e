import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Headless Chromium for end-to-end tests of the status page, through `Fixtures/browser.py`.
///
/// The driver is a long-lived child in its own process group that speaks one JSON line per
/// command on its stdin and one JSON line per answer on its stdout; it runs Chromium (in a
/// process group of its own) over the DevTools pipe and kills that group when it ends. `stop()`
/// asks it to quit and waits, bounded; `deinit` kills what is left, so no browser outlives a test.
final class HeadlessBrowser: Sendable {
    static let driverPath = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/browser.py").path

    /// Chromium: `$CHROMIUM` when set, else Debian's `chromium` on PATH; nil when neither exists.
    static var chromiumPath: String? {
        let environment = ProcessInfo.processInfo.environment
        if let explicit = environment["CHROMIUM"], !explicit.isEmpty {
            return FileManager.default.isExecutableFile(atPath: explicit) ? explicit : nil
        }
        let directories = (environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").map(String.init)
        for directory in directories + ["/usr/bin", "/usr/local/bin"] {
            let candidate = directory + "/chromium"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// Whether browser tests must run (CI sets `GATEWAY_REQUIRE_BROWSER`): then a missing
    /// Chromium fails them instead of skipping them.
    static var required: Bool {
        !(ProcessInfo.processInfo.environment["GATEWAY_REQUIRE_BROWSER"] ?? "").isEmpty
    }

    /// Browser tests run when Chromium is there or when they are required (and then fail
    /// loudly without it); they are skipped only when neither holds.
    static var shouldRun: Bool { chromiumPath != nil || required }

    /// The driver's pid, also its process group.
    let pid: pid_t
    /// Chromium's pid (its process group), as the driver reported it.
    let chromiumPID: pid_t
    /// Chromium's version, for messages.
    let version: String
    private let input: Int32

    private struct State {
        var answers: [String] = []
        var stderr: [String] = []
        var sent = 0
        var stdoutOpen = true
        var inputClosed = false
        var exitStatus: Int32?
    }

    /// Shared with the reader threads, which never keep `self` alive.
    private final class Shared: Sendable {
        let state = Mutex(State())
    }

    private let shared: Shared

    /// Starts the driver and waits (bounded) until Chromium has a page open.
    static func start(timeout: Duration = .seconds(60)) async throws -> HeadlessBrowser {
        guard chromiumPath != nil else {
            throw TestSupportError(
                "chromium is not installed (Debian package chromium; `.ci/run` installs it) and $CHROMIUM names no executable, "
                    + "but GATEWAY_REQUIRE_BROWSER is set")
        }
        let python = try ExternalTool.path("python3")
        let shared = Shared()
        let (pid, input) = try spawn(python, [driverPath], shared: shared)
        do {
            let ready = try await Self.answer(0, shared: shared, pid: pid, timeout: timeout, what: "chromium to start")
            guard ready["ok"] as? Bool == true, let chromium = ready["chromium_pid"] as? Int else {
                throw TestSupportError("the browser driver could not start chromium: \(ready["error"] ?? ready)")
            }
            return HeadlessBrowser(
                pid: pid, chromiumPID: pid_t(chromium), version: ready["version"] as? String ?? "?", input: input, shared: shared)
        } catch {
            Self.kill(pid: pid, input: input, shared: shared, chromiumPID: nil)
            throw error
        }
    }

    private init(pid: pid_t, chromiumPID: pid_t, version: String, input: Int32, shared: Shared) {
        self.pid = pid
        self.chromiumPID = chromiumPID
        self.version = version
        self.input = input
        self.shared = shared
    }

    deinit {
        Self.kill(pid: pid, input: input, shared: shared, chromiumPID: chromiumPID)
    }

    // MARK: Commands

    /// Opens `url` and waits for its load event.
    func goto(_ url: String, timeout: Duration = .seconds(20)) async throws {
        _ = try await command(["cmd": "goto", "url": url, "timeout": timeout.driverSeconds], timeout: timeout + .seconds(5))
    }

    /// Evaluates `expression` in the page (a promise is awaited) and returns its JSON value
    /// (`NSNull` for null, nil for undefined).
    @discardableResult
    func eval(_ expression: String, timeout: Duration = .seconds(10)) async throws -> Any? {
        try await command(["cmd": "eval", "expr": expression, "timeout": timeout.driverSeconds], timeout: timeout + .seconds(5))
    }

    /// Polls `expression` (every 50 ms, until `timeout`) until it returns something truthy, and
    /// returns that. An expression that throws (the page is still navigating) counts as not yet.
    /// The error names `what`, the last value or error, and the page's console.
    @discardableResult
    func waitFor(_ what: String, _ expression: String, timeout: Duration = .seconds(15)) async throws -> Any {
        let deadline = ContinuousClock.now + timeout
        var last = "nothing yet"
        var attempts = 0
        while attempts < 100_000 {
            attempts += 1
            do {
                let value = try await eval(expression, timeout: .seconds(5))
                if let value, Self.truthy(value) { return value }
                last = "\(value ?? "undefined")"
            } catch {
                last = "error: \(error)"
            }
            if ContinuousClock.now >= deadline { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        let console = (try? await self.console()) ?? []
        throw TestSupportError(
            "timed out after \(timeout) waiting for \(what)\n  expression: \(expression)\n  last: \(last)\n  console:\n    "
                + console.suffix(30).joined(separator: "\n    "))
    }

    /// Writes a PNG of the whole page to `path`.
    func screenshot(to path: String) async throws {
        _ = try await command(["cmd": "screenshot", "path": path, "full": true], timeout: .seconds(40))
    }

    /// What the page logged (console calls, uncaught exceptions, browser log entries), last 200.
    func console() async throws -> [String] {
        try await command(["cmd": "console"], timeout: .seconds(10)) as? [String] ?? []
    }

    /// The messages of the dialogs (`confirm`) the driver accepted.
    func dialogs() async throws -> [String] {
        try await command(["cmd": "dialogs"], timeout: .seconds(10)) as? [String] ?? []
    }

    /// Asks the driver to quit and waits (bounded) for it, then kills whatever is left.
    func stop() async {
        _ = try? await command(["cmd": "quit"], timeout: .seconds(10))
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline, Self.reap(pid: pid, shared: shared) == nil {
            try? await Task.sleep(for: .milliseconds(20))
        }
        Self.kill(pid: pid, input: input, shared: shared, chromiumPID: chromiumPID)
    }

    /// Sends one command and returns the `value` of its answer; a failed command throws.
    private func command(_ command: [String: Any], timeout: Duration) async throws -> Any? {
        let line = try JSONSerialization.data(withJSONObject: command) + Data("\n".utf8)
        let index = try shared.state.withLock { state -> Int in
            guard state.exitStatus == nil else { throw TestSupportError("the browser driver has exited") }
            // Under the lock, so that concurrent commands and their answers stay in step.
            try Self.writeAll(input, line)
            state.sent += 1
            return state.sent
        }
        let answer = try await Self.answer(index, shared: shared, pid: pid, timeout: timeout, what: "\(command["cmd"] ?? "?")")
        guard answer["ok"] as? Bool == true else {
            throw TestSupportError("browser \(command["cmd"] ?? "?") failed: \(answer["error"] ?? answer)")
        }
        return answer["value"] is NSNull ? NSNull() : answer["value"]
    }

    /// Waits for answer number `index` (0 is the ready line).
    private static func answer(_ index: Int, shared: Shared, pid: pid_t, timeout: Duration, what: String) async throws -> [String: Any] {
        let deadline = ContinuousClock.now + timeout
        while true {
            let (line, open, stderr) = shared.state.withLock { state in
                (index < state.answers.count ? state.answers[index] : nil, state.stdoutOpen, state.stderr)
            }
            if let line {
                guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                    throw TestSupportError("the browser driver answered with something not a JSON object: \(line)")
                }
                return object
            }
            if !open {
                throw TestSupportError("the browser driver exited while waiting for \(what)\n" + stderr.suffix(30).joined(separator: "\n"))
            }
            if ContinuousClock.now >= deadline {
                throw TestSupportError("the browser driver gave no answer for \(what) within \(timeout)\n" + stderr.suffix(30).joined(separator: "\n"))
            }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    private static func truthy(_ value: Any) -> Bool {
        switch value {
        case is NSNull: return false
        case let bool as Bool: return bool
        case let number as NSNumber: return number.doubleValue != 0
        case let text as String: return !text.isEmpty
        default: return true
        }
    }

    // MARK: The driver process

    private static func writeAll(_ fd: Int32, _ data: Data) throws {
        try data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
            var offset = 0
            while offset < bytes.count {
                let written = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    throw TestSupportError("writing to the browser driver: \(String(cString: strerror(errno)))")
                }
                offset += written
            }
        }
    }

    /// Reaps the driver if it has exited; returns its status then.
    @discardableResult
    private static func reap(pid: pid_t, shared: Shared) -> Int32? {
        shared.state.withLock { state in
            if let status = state.exitStatus { return status }
            var status: Int32 = 0
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid || (result == -1 && errno == ECHILD) { state.exitStatus = status }
            return state.exitStatus
        }
    }

    /// Closes the driver's stdin (it then quits by itself), kills its process group and reaps it.
    /// When the driver had to be killed, Chromium's group goes too: the driver had no chance to.
    private static func kill(pid: pid_t, input: Int32, shared: Shared, chromiumPID: pid_t?) {
        shared.state.withLock { state in
            if state.exitStatus == nil {
                _ = Glibc.kill(-pid, SIGKILL)
                var status: Int32 = 0
                var result: pid_t
                repeat {
                    result = waitpid(pid, &status, 0)
                } while result == -1 && errno == EINTR
                state.exitStatus = status
                // Chromium's group outlives a killed driver until it notices the closed pipe.
                if let chromiumPID { _ = Glibc.kill(-chromiumPID, SIGKILL) }
            }
            if !state.inputClosed {
                close(input)
                state.inputClosed = true
            }
        }
    }

    private static func makePipe() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw TestSupportError("pipe: \(String(cString: strerror(errno)))") }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        return (fds[0], fds[1])
    }

    /// Spawns the driver in its own process group with pipes on its stdin, stdout and stderr,
    /// and starts a reader thread on each of the last two. (The driver closes any other
    /// descriptor it inherits, so a pipe of a concurrently spawned child cannot stay open in it.)
    private static func spawn(_ executable: String, _ arguments: [String], shared: Shared) throws -> (pid_t, Int32) {
        let stdinPipe = try makePipe()
        let stdoutPipe = try makePipe()
        let stderrPipe = try makePipe()
        defer {
            close(stdinPipe.read)
            close(stdoutPipe.write)
            close(stderrPipe.write)
        }
        var actions = posix_spawn_file_actions_t()
        var attributes = posix_spawnattr_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawn_file_actions_adddup2(&actions, stdinPipe.read, 0)
        posix_spawn_file_actions_adddup2(&actions, stdoutPipe.write, 1)
        posix_spawn_file_actions_adddup2(&actions, stderrPipe.write, 2)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = ProcessInfo.processInfo.environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard result == 0 else {
            close(stdinPipe.write)
            close(stdoutPipe.read)
            close(stderrPipe.read)
            throw TestSupportError("cannot start \(executable): \(String(cString: strerror(result)))")
        }
        readLines(stdoutPipe.read, shared: shared) { state, lines, ended in
            state.answers += lines
            if ended { state.stdoutOpen = false }
        }
        readLines(stderrPipe.read, shared: shared) { state, lines, _ in
            state.stderr += lines
            state.stderr = Array(state.stderr.suffix(500))
        }
        return (pid, stdinPipe.write)
    }

    /// Reads `fd` to EOF on a thread of its own, handing over whole lines.
    private static func readLines(_ fd: Int32, shared: Shared, _ add: @escaping @Sendable (inout State, [String], Bool) -> Void) {
        let thread = Thread {
            var pending: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 64 * 1024)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                if count <= 0 { break }
                pending.append(contentsOf: buffer[0..<count])
                var lines: [String] = []
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    lines.append(String(decoding: pending[..<newline], as: UTF8.self))
                    pending.removeSubrange(...newline)
                }
                if !lines.isEmpty { shared.state.withLock { add(&$0, lines, false) } }
            }
            close(fd)
            let last = pending.isEmpty ? [] : [String(decoding: pending, as: UTF8.self)]
            shared.state.withLock { add(&$0, last, true) }
        }
        thread.start()
    }
}

extension Duration {
    /// Seconds as a Double, for the driver's JSON.
    fileprivate var driverSeconds: Double {
        let (whole, fraction) = components
        return Double(whole) + Double(fraction) / 1e18
    }
}

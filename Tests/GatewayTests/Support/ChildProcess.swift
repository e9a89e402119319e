import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A child process started by a test, with its output captured line by line.
///
/// Spawned with `posix_spawn` rather than Foundation's `Process` so that the test owns the whole
/// life cycle: the child gets its own process group (a cleanup kill reaches anything it forked),
/// default signal dispositions and an empty signal mask (so SIGTERM/SIGINT behave as they would
/// from a shell), stdin from /dev/null, and it is reaped by this object and nobody else.
/// Whatever happens to the test, `deinit` kills and reaps the child: nothing outlives a test.
final class ChildProcess: Sendable {
    /// Which output stream a line came from.
    enum Stream: Sendable {
        case stdout
        case stderr
    }

    /// The child's process id (also its process group id).
    let pid: pid_t
    /// What was started, for messages.
    let commandLine: String

    private struct State {
        var stdout: [String] = []
        var stderr: [String] = []
        var openStreams = 2
        /// Set once the child has been reaped: exit code, or 128 + signal number.
        var exitStatus: Int32?
    }

    /// Shared with the reader threads. Kept apart from `self` so that those threads never keep
    /// the `ChildProcess` alive: its `deinit` is what kills the child and so ends them.
    private final class Shared: Sendable {
        let state = Mutex(State())
    }

    private let shared = Shared()

    /// Starts `executable` with `arguments`.
    ///
    /// - Parameters:
    ///   - environment: added to (and overriding) this process's environment, unless
    ///     `inheritEnvironment` is false, in which case it is the whole environment.
    ///   - echo: also copy every line to this process's stderr, prefixed with the pid, for
    ///     debugging a test.
    init(
        executable: String,
        arguments: [String] = [],
        environment: [String: String] = [:],
        inheritEnvironment: Bool = true,
        echo: Bool = false,
        descriptor3: Int32? = nil
    ) throws {
        self.commandLine = ([executable] + arguments).joined(separator: " ")

        var env = inheritEnvironment ? ProcessInfo.processInfo.environment : [:]
        env.merge(environment) { _, new in new }

        let (pid, stdoutRead, stderrRead) = try Self.spawnLock.withLock { _ in
            try Self.spawn(executable: executable, arguments: arguments, environment: env, descriptor3: descriptor3)
        }
        self.pid = pid

        let prefix = echo ? "[\(executable.split(separator: "/").last ?? "") \(self.pid)] " : nil
        self.startReader(fd: stdoutRead, stream: .stdout, echoPrefix: prefix)
        self.startReader(fd: stderrRead, stream: .stderr, echoPrefix: prefix)
    }

    /// Starts the built `gateway` binary with `arguments`.
    static func gateway(
        _ arguments: [String],
        environment: [String: String] = [:],
        echo: Bool = false
    ) throws -> ChildProcess {
        try ChildProcess(executable: GatewayBinary.path, arguments: arguments, environment: environment, echo: echo)
    }

    deinit {
        self.killAndReap()
    }

    // MARK: Output

    /// Complete lines written to stdout so far (a partial last line appears once the stream ends).
    var stdoutLines: [String] { self.shared.state.withLock { $0.stdout } }
    /// Complete lines written to stderr so far.
    var stderrLines: [String] { self.shared.state.withLock { $0.stderr } }
    /// Both streams, for failure messages.
    var outputDescription: String {
        self.shared.state.withLock {
            "stdout:\n" + $0.stdout.joined(separator: "\n") + "\nstderr:\n" + $0.stderr.joined(separator: "\n")
        }
    }

    /// Waits until a line containing `text` appears on `stream` (either stream when `nil`) and
    /// returns that line.
    ///
    /// Fails at once when the child has closed both streams without printing it, and after
    /// `timeout` otherwise; the error carries everything the child printed.
    @discardableResult
    func waitForOutput(
        containing text: String,
        in stream: Stream? = nil,
        timeout: Duration = .seconds(10)
    ) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while true {
            let (line, finished) = self.shared.state.withLock { state -> (String?, Bool) in
                let lines: [String]
                switch stream {
                case .stdout: lines = state.stdout
                case .stderr: lines = state.stderr
                case nil: lines = state.stdout + state.stderr
                }
                return (lines.first { $0.contains(text) }, state.openStreams == 0)
            }
            if let line { return line }
            if finished {
                throw TestSupportError(
                    "\(self.commandLine) closed its output without printing \"\(text)\"\n\(self.outputDescription)"
                )
            }
            if ContinuousClock.now >= deadline {
                throw TestSupportError(
                    "\(self.commandLine) did not print \"\(text)\" within \(timeout)\n\(self.outputDescription)"
                )
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Waits until the child has closed both stdout and stderr (normally: it has exited), so
    /// that `stdoutLines` and `stderrLines` are complete.
    func waitForOutputToEnd(timeout: Duration = .seconds(10)) async throws {
        let deadline = ContinuousClock.now + timeout
        while self.shared.state.withLock({ $0.openStreams > 0 }) {
            if ContinuousClock.now >= deadline {
                throw TestSupportError(
                    "\(self.commandLine) kept its output open for more than \(timeout)\n\(self.outputDescription)"
                )
            }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    // MARK: Signals and exit

    /// Sends `signal` to the child (not its group), unless it has already been reaped.
    func terminate(signal: Int32 = SIGTERM) {
        self.shared.state.withLock { state in
            // Checked under the lock so a reaped (and possibly reused) pid is never signalled.
            if state.exitStatus == nil {
                _ = kill(self.pid, signal)
            }
        }
    }

    /// Whether the child has been reaped; checks without blocking.
    var hasExited: Bool { self.pollExit() != nil }

    /// Waits until the child exits and returns its status: the exit code, or 128 + the signal
    /// number when a signal ended it (the shell's convention).
    func waitForExit(timeout: Duration = .seconds(10)) async throws -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let status = self.pollExit() { return status }
            if ContinuousClock.now >= deadline {
                throw TestSupportError(
                    "\(self.commandLine) (pid \(self.pid)) did not exit within \(timeout)\n\(self.outputDescription)"
                )
            }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    /// SIGKILLs the child's process group and reaps the child. Safe to call more than once.
    func killAndReap() {
        self.shared.state.withLock { state in
            guard state.exitStatus == nil else { return }
            _ = kill(-self.pid, SIGKILL)
            _ = kill(self.pid, SIGKILL)
            var status: Int32 = 0
            var result: pid_t
            repeat {
                result = waitpid(self.pid, &status, 0)
            } while result == -1 && errno == EINTR
            state.exitStatus = result == self.pid ? Self.decode(status) : -1
        }
    }

    /// Whether the child has not exited (yet).
    var isRunning: Bool { pollExit() == nil }

    private func pollExit() -> Int32? {
        self.shared.state.withLock { state in
            if let status = state.exitStatus { return status }
            var status: Int32 = 0
            let result = waitpid(self.pid, &status, WNOHANG)
            if result == self.pid {
                state.exitStatus = Self.decode(status)
            } else if result == -1 && errno == ECHILD {
                state.exitStatus = -1
            }
            return state.exitStatus
        }
    }

    private static func decode(_ status: Int32) -> Int32 {
        // WIFEXITED / WEXITSTATUS / WTERMSIG are macros Swift does not import.
        let signal = status & 0x7f
        if signal == 0 { return (status >> 8) & 0xff }
        return 128 + signal
    }

    // MARK: Spawning

    /// Held from creating a child's pipes until it has been spawned.
    ///
    /// The pipes are made close-on-exec so that a child spawned by a concurrent test does not
    /// inherit them (or this child's output would never see EOF); `pipe` and `fcntl` are two
    /// calls, so without this lock another spawn could slip in between them.
    private static let spawnLock = Mutex(())

    private static func makePipe() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw TestSupportError("pipe: \(String(cString: strerror(errno)))") }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        return (fds[0], fds[1])
    }

    /// Spawns the child with fresh pipes for stdout and stderr; returns the pid and the read ends.
    private static func spawn(
        executable: String,
        arguments: [String],
        environment: [String: String],
        descriptor3: Int32? = nil
    ) throws -> (pid: pid_t, stdout: Int32, stderr: Int32) {
        let stdoutPipe = try makePipe()
        let stderrPipe: (read: Int32, write: Int32)
        do {
            stderrPipe = try makePipe()
        } catch {
            close(stdoutPipe.read)
            close(stdoutPipe.write)
            throw error
        }
        // The child has its own copies of the write ends; ours must go or EOF never comes.
        defer {
            close(stdoutPipe.write)
            close(stderrPipe.write)
        }

        #if canImport(Darwin)
        var actions: posix_spawn_file_actions_t? = nil
        var attributes: posix_spawnattr_t? = nil
        #else
        var actions = posix_spawn_file_actions_t()
        var attributes = posix_spawnattr_t()
        #endif
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }

        // dup2 clears close-on-exec on the target, so the child keeps 1 and 2 only.
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, stdoutPipe.write, 1)
        posix_spawn_file_actions_adddup2(&actions, stderrPipe.write, 2)
        // As systemd passes a socket: fd 3, inherited (dup2 clears close-on-exec).
        if let descriptor3 { posix_spawn_file_actions_adddup2(&actions, descriptor3, 3) }

        var allSignals = sigset_t()
        sigfillset(&allSignals)
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setpgroup(&attributes, 0)
        let flags = POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK
        posix_spawnattr_setflags(&attributes, Int16(flags))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard result == 0 else {
            close(stdoutPipe.read)
            close(stderrPipe.read)
            throw TestSupportError("cannot start \(executable): \(String(cString: strerror(result)))")
        }
        return (pid, stdoutPipe.read, stderrPipe.read)
    }

    /// Reads `fd` to EOF on a dedicated thread, splitting it into lines.
    ///
    /// A plain thread with blocking reads: the child's output is small, and this keeps the test
    /// process's executors free of blocking calls.
    private func startReader(fd: Int32, stream: Stream, echoPrefix: String?) {
        let shared = self.shared
        let thread = Thread {
            var pending: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 16 * 1024)
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
                if !lines.isEmpty { Self.append(lines, to: stream, in: shared, echoPrefix: echoPrefix) }
            }
            close(fd)
            let last = pending.isEmpty ? [] : [String(decoding: pending, as: UTF8.self)]
            Self.append(last, to: stream, in: shared, echoPrefix: echoPrefix, closing: true)
        }
        thread.start()
    }

    private static func append(
        _ lines: [String],
        to stream: Stream,
        in shared: Shared,
        echoPrefix: String?,
        closing: Bool = false
    ) {
        if let echoPrefix {
            for line in lines {
                FileHandle.standardError.write(Data((echoPrefix + line + "\n").utf8))
            }
        }
        shared.state.withLock { state in
            switch stream {
            case .stdout: state.stdout.append(contentsOf: lines)
            case .stderr: state.stderr.append(contentsOf: lines)
            }
            if closing { state.openStreams -= 1 }
        }
    }
}

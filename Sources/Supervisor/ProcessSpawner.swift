import Dispatch
import Glibc
import Synchronization

/// Starts backend processes: each in its own process group, output relayed, reaped by a thread
/// of its own.
///
/// Each spawn gets a dedicated thread that calls `posix_spawn` and then blocks in
/// `waitpid(pid, …, 0)` for that child alone, publishes the exit status and ends. Two reasons:
/// - Linux's PR_SET_PDEATHSIG (set by the `_launch` launcher in the child) fires when the
///   *thread* that created the child exits, not the process. So the creating thread must live
///   exactly as long as the child: a pool thread that spawns and moves on would kill the child
///   when the pool trims itself.
/// - Reaping only our own pid (never `waitpid(-1)`) cannot steal the exit of a child that other
///   code in the same process started (Foundation.Process, a test's own helpers).
public struct ProcessSpawner: Sendable {
    /// The environment variable through which the launcher learns who its parent should be.
    public static let parentPIDVariable = "GATEWAY_PARENT_PID"

    private let launcher: [String]
    private let relay: OutputRelay
    private let watchdog: GroupWatchdogClient?
    /// How long the exit waits for the pipes to reach end of file after the group was killed;
    /// only a process that left the group (setsid) can hold them open that long.
    var drainGrace: Duration = .seconds(1)

    /// - Parameters:
    ///   - launcher: argv put before the command. The gateway passes
    ///     `[<its own binary>, "_launch", "--"]`, which sets PR_SET_PDEATHSIG in the child and then
    ///     execs the command, so a killed gateway takes its children along. `[]` execs the command
    ///     directly (tests, platforms without the launcher).
    ///   - relay: where the children's output lines go.
    ///   - watchdog: told about every group while it lives, so grandchildren die too if the
    ///     gateway is SIGKILLed (PDEATHSIG only reaches the direct child).
    public init(launcher: [String] = [], relay: OutputRelay, watchdog: GroupWatchdogClient? = nil) {
        self.launcher = launcher
        self.relay = relay
        self.watchdog = watchdog
    }

    /// Starts `request`'s command and returns once it runs (or failed to start).
    ///
    /// Blocks the caller for the few milliseconds posix_spawn takes; errors are returned, not
    /// logged, so the state machine above decides what is worth a log line.
    public func spawn(_ request: SpawnRequest) throws(SpawnError) -> SpawnedProcess {
        func failure(_ code: Int32, _ context: String? = nil) -> SpawnError {
            SpawnError(name: request.name, arguments: request.arguments, errno: code, context: context)
        }
        guard let command = request.arguments.first else {
            throw failure(EINVAL, "no command given")
        }
        if let directory = request.workingDirectory, let error = ExecutableLookup.checkDirectory(directory) {
            throw failure(error.code, "working directory '\(directory)'")
        }
        // Always look the command up here, also when the launcher will exec it, so that a
        // missing command is this error and not an exit status 127 a moment later.
        let resolved = ExecutableLookup.resolve(
            command,
            searchPath: request.environment["PATH"],
            workingDirectory: request.workingDirectory
        )
        let executable: String
        let arguments: [String]
        var environment = request.environment
        switch (resolved, launcher.first) {
        case (.failure(let error), _):
            throw failure(error.code)
        case (.success(let path), nil):
            executable = path
            arguments = request.arguments
        case (.success, let launcherCommand?):
            // The launcher runs in the child's working directory, so it is resolved to an
            // absolute path against ours first.
            switch ExecutableLookup.resolve(
                launcherCommand, searchPath: getenv("PATH").map { String(cString: $0) },
                workingDirectory: nil
            ) {
            case .success(let path): executable = path
            case .failure(let error): throw failure(error.code, "launcher '\(launcherCommand)'")
            }
            arguments = launcher + request.arguments
            environment[Self.parentPIDVariable] = String(getpid())
        }

        relay.log?.setLogFile(request.logFile, for: request.name)
        guard let output = GNULibC.closeOnExecPipe() else { throw failure(errno, "output pipe") }
        guard let errors = GNULibC.closeOnExecPipe() else {
            let code = errno
            close(output.read)
            close(output.write)
            throw failure(code, "output pipe")
        }
        // Only our ends are non-blocking (a spurious wake-up must not block the relay); the
        // child's ends stay blocking, as programs expect of their stdout.
        for descriptor in [output.read, errors.read] {
            _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
        }

        let options = PosixSpawn.Options(
            executable: executable,
            arguments: arguments,
            environment: environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" },
            workingDirectory: request.workingDirectory,
            standardInput: nil,
            standardOutput: output.write,
            standardError: errors.write
        )
        let handoff = Handoff<Result<SpawnedProcess, ExecutableLookup.Errno>>()
        let started = DedicatedThread.start { [relay, watchdog, drainGrace] in
            Self.runChild(
                name: request.name, options: options, stdout: output.read, stderr: errors.read,
                relay: relay, watchdog: watchdog, drainGrace: drainGrace, handoff: handoff
            )
        }
        if started != 0 {
            [output.read, output.write, errors.read, errors.write].forEach { close($0) }
            throw failure(started, "spawn thread")
        }
        switch handoff.wait() {
        case .success(let process): return process
        case .failure(let error): throw failure(error.code)
        }
    }

    /// The dedicated thread's whole life: spawn, hand the process over, wait, reap, publish.
    private static func runChild(
        name: String,
        options: PosixSpawn.Options,
        stdout: Int32,
        stderr: Int32,
        relay: OutputRelay,
        watchdog: GroupWatchdogClient?,
        drainGrace: Duration,
        handoff: Handoff<Result<SpawnedProcess, ExecutableLookup.Errno>>
    ) {
        let startedAt = ContinuousClock.now
        let result = PosixSpawn.spawn(options)
        // The child has its copies (or never will); ours must go so end of file can happen.
        close(options.standardOutput!)
        close(options.standardError!)
        let pid: pid_t
        switch result {
        case .failure(let error):
            close(stdout)
            close(stderr)
            handoff.finish(.failure(error))
            return
        case .success(let spawned):
            pid = spawned
        }

        let process = SpawnedProcess(name: name, pid: pid, startedAt: startedAt)
        process.setOutput([stdout, stderr])
        watchdog?.register(pid)
        handoff.finish(.success(process))

        // From here on this thread has to outlive the child (see the type's comment); meanwhile
        // it relays the output, and once the leader exits it kills the group, reaps, lets the
        // tail of the output through and publishes the exit.
        var watch = ChildWatch(
            process: process,
            channels: [relay.channel(name: name, pid: pid, stream: .stdout), relay.channel(name: name, pid: pid, stream: .stderr)],
            descriptors: [stdout, stderr],
            watchdog: watchdog,
            drainGrace: drainGrace
        )
        watch.run()
    }
}

extension ProcessSpawner {
    /// Watches a child this process already has (an exec replaced the program that spawned
    /// it, and kept the pid, the child and the pipes): relays `output` (stdout and stderr read
    /// ends, -1 if closed), reaps it, publishes its exit, like a child this spawner started.
    public func adopt(
        name: String, pid: Int32, startedAt: ContinuousClock.Instant, output: [Int32], logFile: LogFileSpec? = nil
    ) -> SpawnedProcess {
        relay.log?.setLogFile(logFile, for: name)
        let process = SpawnedProcess(name: name, pid: pid, startedAt: startedAt)
        for fd in output where fd >= 0 {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
        process.setOutput(output)
        let channels = [relay.channel(name: name, pid: pid, stream: .stdout), relay.channel(name: name, pid: pid, stream: .stderr)]
        let started = DedicatedThread.start { [watchdog, drainGrace] in
            var watch = ChildWatch(
                process: process, channels: channels, descriptors: output, watchdog: watchdog, drainGrace: drainGrace)
            watch.run()
        }
        if started != 0 {
            // No thread: nobody relays or reaps; report it gone rather than wait for ever.
            process.publish(.exited(-1))
        }
        return process
    }

    /// Starts a helper process that is no instance (the keeper's worker): its own process
    /// group, stdout and stderr inherited, `descriptor` as its fd 3, nothing relayed or watched.
    /// The caller reaps it.
    public static func spawnHelper(
        executable: String, arguments: [String], environment: [String: String], descriptor: Int32
    ) throws(SpawnError) -> Int32 {
        func failure(_ code: Int32) -> SpawnError {
            SpawnError(name: "worker", arguments: arguments, errno: code, context: nil)
        }
        let path: String
        switch ExecutableLookup.resolve(executable, searchPath: getenv("PATH").map { String(cString: $0) }, workingDirectory: nil) {
        case .success(let resolved): path = resolved
        case .failure(let error): throw failure(error.code)
        }
        let result = PosixSpawn.spawn(.init(
            executable: path, arguments: arguments,
            environment: environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" },
            workingDirectory: nil, standardInput: nil, standardOutput: nil, standardError: nil,
            passedDescriptor: descriptor))
        switch result {
        case .success(let pid): return pid
        case .failure(let error): throw failure(error.code)
        }
    }
}

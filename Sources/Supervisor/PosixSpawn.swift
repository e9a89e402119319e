import Glibc

/// The one place that calls `posix_spawn`.
///
/// Why not Foundation.Process or swift-subprocess (1.0.2 is available): neither lets us run code
/// in the child before exec, which PR_SET_PDEATHSIG needs (our `_launch` launcher does that part
/// instead), and both reap children on their own, while here exactly one dedicated thread per
/// child must create it and `waitpid` for it (see ``ProcessSpawner``). And not `fork` in Swift:
/// after fork only async-signal-safe calls are allowed, which Swift code cannot promise.
enum PosixSpawn {
    struct Options {
        /// Absolute path of the file to exec.
        var executable: String
        /// argv, argv[0] included.
        var arguments: [String]
        /// envp, "KEY=value" each.
        var environment: [String]
        var workingDirectory: String?
        /// Descriptor to become the child's stdin; nil opens /dev/null there.
        var standardInput: Int32?
        /// Descriptors to become the child's stdout and stderr; nil inherits the parent's.
        var standardOutput: Int32?
        var standardError: Int32?
        /// A descriptor to become the child's fd 3 (the keeper's link to a worker).
        var passedDescriptor: Int32? = nil
    }

    /// Spawns the child as the leader of a new process group, with every signal at its default
    /// disposition and none blocked. Returns the pid, or the errno posix_spawn reported (glibc
    /// reports exec and chdir failures too, as it spawns with CLONE_VFORK).
    static func spawn(_ options: Options) -> Result<pid_t, ExecutableLookup.Errno> {
        var actions = posix_spawn_file_actions_t()
        guard posix_spawn_file_actions_init(&actions) == 0 else { return .failure(.init(ENOMEM)) }
        defer { posix_spawn_file_actions_destroy(&actions) }
        var attributes = posix_spawnattr_t()
        guard posix_spawnattr_init(&attributes) == 0 else { return .failure(.init(ENOMEM)) }
        defer { posix_spawnattr_destroy(&attributes) }

        var failure: Int32 = 0
        func record(_ result: Int32) {
            if failure == 0 && result != 0 { failure = result }
        }

        if let directory = options.workingDirectory {
            guard let addChdir = GNULibC.addChdir else { return .failure(.init(ENOSYS)) }
            record(addChdir(&actions, directory))
        }
        if let input = options.standardInput {
            record(posix_spawn_file_actions_adddup2(&actions, input, STDIN_FILENO))
        } else {
            record(posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0))
        }
        if let output = options.standardOutput {
            record(posix_spawn_file_actions_adddup2(&actions, output, STDOUT_FILENO))
        }
        if let error = options.standardError {
            record(posix_spawn_file_actions_adddup2(&actions, error, STDERR_FILENO))
        }
        if let passed = options.passedDescriptor {
            record(posix_spawn_file_actions_adddup2(&actions, passed, 3))
        }
        // After the dup2s, so the sources (>= 3, close-on-exec anyway) go too.
        if let addCloseFrom = GNULibC.addCloseFrom {
            record(addCloseFrom(&actions, options.passedDescriptor == nil ? 3 : 4))
        }

        // Own process group (pgid 0 = the child's pid): a stop reaches grandchildren, and a
        // Ctrl-C meant for the gateway's terminal group does not hit backends behind its back.
        // Default dispositions and an empty mask: the gateway traps SIGTERM/SIGINT through
        // Dispatch (and may block signals on some threads); a backend must get the defaults.
        let flags = POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
        record(posix_spawnattr_setflags(&attributes, Int16(flags)))
        record(posix_spawnattr_setpgroup(&attributes, 0))
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        record(posix_spawnattr_setsigmask(&attributes, &noSignals))
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        record(posix_spawnattr_setsigdefault(&attributes, &allSignals))
        if failure != 0 {
            return .failure(.init(failure))
        }

        var pid: pid_t = 0
        let result = withCStringArray(options.arguments) { argv in
            withCStringArray(options.environment) { envp in
                posix_spawn(&pid, options.executable, &actions, &attributes, argv, envp)
            }
        }
        return result == 0 ? .success(pid) : .failure(.init(result))
    }

    private static func withCStringArray<Result>(
        _ strings: [String],
        _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> Result
    ) -> Result {
        var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
        pointers.append(nil)
        defer { pointers.forEach { free($0) } }
        return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}

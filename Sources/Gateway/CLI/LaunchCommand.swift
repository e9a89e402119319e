import ArgumentParser
import Supervisor

#if canImport(Glibc)
import Glibc
#endif

/// `gateway _launch -- CMD ARGS...`: the first thing a supervised backend runs.
///
/// The spawner puts this in front of every command. It makes the backend die with the gateway:
/// it sets PR_SET_PDEATHSIG to SIGKILL, checks that the gateway is still its parent (it may have
/// died before the prctl took effect), and execs the command, which keeps the death signal.
/// Run from the gateway's own binary because posix_spawn cannot run code in the child before exec.
struct LaunchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "_launch",
        abstract: "Run a command that dies with the gateway (internal).",
        shouldDisplay: false
    )

    @Argument(parsing: .postTerminator, help: "The command and its arguments, after '--'.")
    var command: [String] = []

    func run() throws {
        guard let program = command.first else {
            throw ValidationError("no command given after '--'")
        }
        #if os(Linux)
        // prctl and exec must happen on the same thread: the kernel keeps the death signal per
        // thread and exec keeps only the calling thread. Both happen in this function, no await.
        guard ProcessControl.setParentDeathSignal(SIGKILL) else {
            Self.fail("gateway: cannot set the parent-death signal: \(String(cString: strerror(errno)))", status: 1)
        }
        // The parent may have died before the prctl: then we are already orphaned (adopted by
        // init, pid 1, or by a subreaper, hence the comparison with the pid the spawner gave us),
        // the death signal will never come, and the command must not start.
        let parent = getppid()
        guard let expected = getenv(ProcessSpawner.parentPIDVariable).flatMap({ Int32(String(cString: $0)) }) else {
            Self.fail("gateway: \(ProcessSpawner.parentPIDVariable) is not set; _launch is for the gateway's own use", status: 1)
        }
        guard parent != 1, parent == expected else {
            Glibc.exit(1)
        }
        // The backend's environment is exactly what the configuration asked for.
        unsetenv(ProcessSpawner.parentPIDVariable)
        #endif

        // The command must start with the signal state posix_spawn gave this process, but this
        // code may run on a thread of the Swift runtime's pool, which blocks most signals (and
        // exec keeps the calling thread's mask): a backend that inherited it would never see
        // SIGTERM and could only be stopped by SIGKILL. Unblock everything, default everything.
        var none = sigset_t()
        sigemptyset(&none)
        pthread_sigmask(SIG_SETMASK, &none, nil)
        for signal: Int32 in 1..<32 where signal != SIGKILL && signal != SIGSTOP {
            Glibc.signal(signal, SIG_DFL)
        }

        var argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) }
        argv.append(nil)
        execvp(program, argv)
        Self.fail("gateway: cannot run '\(program)': \(String(cString: strerror(errno)))", status: 127)
    }

    private static func fail(_ message: String, status: Int32) -> Never {
        // One write(2) on fd 2: the relay reads it as one whole line.
        let line = Array((message + "\n").utf8)
        _ = line.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
        Glibc.exit(status)
    }
}

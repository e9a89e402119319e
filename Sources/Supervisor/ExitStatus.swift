import Glibc

/// How a process ended, as the operator wants to read it in a log line.
///
/// Kept apart from the raw `waitpid` status so that callers (backoff policy, logs, the admin API)
/// never decode bit fields, and so that "killed by our SIGKILL" and "exited 137" stay distinct.
public enum ExitStatus: Sendable, Equatable, Hashable, Codable, CustomStringConvertible {
    /// The process called `exit` (or returned from `main`) with this code.
    case exited(Int32)
    /// A signal ended the process.
    case signaled(Int32, coreDumped: Bool)

    /// `exit status 1`, `signal 9 (KILL)`, `signal 11 (SEGV), core dumped`.
    public var description: String {
        switch self {
        case .exited(let code):
            return "exit status \(code)"
        case .signaled(let signal, let coreDumped):
            var text = "signal \(signal)"
            if let name = ExitStatus.signalName(signal) {
                text += " (\(name))"
            }
            if coreDumped {
                text += ", core dumped"
            }
            return text
        }
    }

    /// The signal's name without the `SIG` prefix (`KILL`, `TERM`), or `nil` for a signal outside
    /// SIGHUP...SIGSYS (real-time signals have no fixed name).
    public static func signalName(_ signal: Int32) -> String? {
        signalNames[signal]
    }

    /// Built from the C constants rather than from numbers, so the table is right on every Linux
    /// architecture without us restating the kernel's numbering.
    private static let signalNames: [Int32: String] = [
        SIGHUP: "HUP", SIGINT: "INT", SIGQUIT: "QUIT", SIGILL: "ILL", SIGTRAP: "TRAP",
        SIGABRT: "ABRT", SIGBUS: "BUS", SIGFPE: "FPE", SIGKILL: "KILL", SIGUSR1: "USR1",
        SIGSEGV: "SEGV", SIGUSR2: "USR2", SIGPIPE: "PIPE", SIGALRM: "ALRM", SIGTERM: "TERM",
        SIGSTKFLT: "STKFLT", SIGCHLD: "CHLD", SIGCONT: "CONT", SIGSTOP: "STOP", SIGTSTP: "TSTP",
        SIGTTIN: "TTIN", SIGTTOU: "TTOU", SIGURG: "URG", SIGXCPU: "XCPU", SIGXFSZ: "XFSZ",
        SIGVTALRM: "VTALRM", SIGPROF: "PROF", SIGWINCH: "WINCH", SIGIO: "IO", SIGPWR: "PWR",
        SIGSYS: "SYS",
    ]

    /// Decodes a `waitpid` status word. The `WIFEXITED`-family macros are not imported into
    /// Swift, so this restates them (Linux layout: low 7 bits = terminating signal, 0x80 = core
    /// dumped, bits 8...15 = exit code).
    public init(waitStatus status: Int32) {
        let signal = status & 0x7f
        if signal == 0 {
            self = .exited((status >> 8) & 0xff)
        } else {
            self = .signaled(signal, coreDumped: status & 0x80 != 0)
        }
    }
}

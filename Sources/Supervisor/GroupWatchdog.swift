import Glibc

/// The watchdog process's logic: remember the process groups the gateway announces, and kill them
/// all when the gateway goes away.
///
/// PR_SET_PDEATHSIG only reaches a backend's direct child (the leader of its group); if the
/// gateway is SIGKILLed, the leader dies but its own children would live on, reparented to init.
/// The watchdog is a separate process in its own group that outlives the gateway: the gateway
/// holds the only writing end of its input, so the kernel closes it when the gateway dies, for
/// whatever reason, and the watchdog reads end of file.
///
/// Protocol on the input, one line each: `+PGID` (a group was started), `-PGID` (it was reaped
/// and killed). Anything else is ignored. Group ids of 0 and 1 are refused: `kill(-0)` would be
/// the watchdog's own group and `kill(-1)` every process it may signal.
public enum GroupWatchdog {
    /// Reads the protocol from `input` until end of file (or an unrecoverable read error), then
    /// sends SIGKILL to every group still registered and returns the groups it signalled.
    ///
    /// It does not change signal dispositions, so it can run inside a test process; the
    /// `_watchdog` command calls ``ignoreTerminationSignals()`` first.
    @discardableResult
    public static func run(input: Int32) -> [Int32] {
        var parser = Parser()
        withUnsafeTemporaryAllocation(byteCount: 4096, alignment: 1) { buffer in
            while true {
                let count = read(input, buffer.baseAddress, buffer.count)
                if count > 0 {
                    parser.consume(UnsafeRawBufferPointer(rebasing: buffer[..<count]))
                } else if count < 0 && errno == EINTR {
                    continue
                } else {
                    return
                }
            }
        }
        let groups = parser.groups.sorted()
        for group in groups {
            // A group that emptied in the meantime answers ESRCH, which is fine. Its id could
            // only have been reused if a new process took the leader's pid and made itself a group
            // leader within the moment since the gateway died; that window is accepted.
            _ = kill(-group, SIGKILL)
        }
        return groups
    }

    /// SIGINT, SIGTERM and SIGHUP ignored (a Ctrl-C, a `systemctl stop` or a closed terminal that
    /// ends the gateway must leave the watchdog alive long enough to clean up), and SIGPIPE too.
    public static func ignoreTerminationSignals() {
        for signal in [SIGINT, SIGTERM, SIGHUP, SIGPIPE] {
            _ = Glibc.signal(signal, SIG_IGN)
        }
    }

    /// Parses the line protocol; exposed to tests through `@testable`.
    struct Parser {
        private(set) var groups: Set<Int32> = []
        private var line: [UInt8] = []

        mutating func consume(_ bytes: UnsafeRawBufferPointer) {
            for byte in bytes {
                if byte == UInt8(ascii: "\n") {
                    apply(line)
                    line.removeAll(keepingCapacity: true)
                } else if line.count < 32 {
                    line.append(byte)
                }
            }
        }

        private mutating func apply(_ line: [UInt8]) {
            guard let sign = line.first,
                  let group = Int32(String(decoding: line.dropFirst(), as: UTF8.self)),
                  group > 1
            else { return }
            switch sign {
            case UInt8(ascii: "+"): groups.insert(group)
            case UInt8(ascii: "-"): groups.remove(group)
            default: break
            }
        }
    }
}

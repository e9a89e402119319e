import Glibc
import Synchronization

/// The gateway's side of the ``GroupWatchdog``: starts the watchdog process and tells it which
/// process groups exist.
///
/// The channel is a Unix stream socket pair on the watchdog's stdin rather than a pipe, because
/// `send(MSG_NOSIGNAL)` lets a write to a dead watchdog fail with EPIPE instead of raising
/// SIGPIPE in the gateway. Our end is close-on-exec (and spawns close descriptors >= 3), so no
/// child inherits it and keeps the watchdog from seeing end of file when the gateway dies.
public final class GroupWatchdogClient: Sendable {
    /// The watchdog's pid (its own process-group leader).
    public let pid: Int32
    /// Our end of the channel; -1 once closed.
    private let channel: Mutex<Int32>

    private init(pid: Int32, channel: Int32) {
        self.pid = pid
        self.channel = Mutex(channel)
    }

    /// Starts `executable + ["_watchdog"]` (the gateway passes its own binary) in its own process
    /// group, so terminal and group signals meant for the gateway do not reach it.
    ///
    /// The watchdog is exec'd directly, without the launcher: it must *not* die with the gateway.
    /// A thread of ours reaps it when it exits, so no zombie is left behind.
    public static func start(executable: [String]) throws(SpawnError) -> GroupWatchdogClient {
        let arguments = executable + ["_watchdog"]
        func failure(_ code: Int32, _ context: String? = nil) -> SpawnError {
            SpawnError(name: "watchdog", arguments: arguments, errno: code, context: context)
        }
        guard let command = executable.first else { throw failure(EINVAL, "no command given") }
        let path: String
        switch ExecutableLookup.resolve(
            command, searchPath: getenv("PATH").map { String(cString: $0) }, workingDirectory: nil
        ) {
        case .success(let resolved): path = resolved
        case .failure(let error): throw failure(error.code)
        }

        var ends: [Int32] = [-1, -1]
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        guard socketpair(AF_UNIX, type, 0, &ends) == 0 else { throw failure(errno, "socket pair") }
        let (ours, theirs) = (ends[0], ends[1])
        // Nothing to read from the watchdog; our end only writes.
        _ = shutdown(theirs, Int32(SHUT_WR))

        let spawned = PosixSpawn.spawn(.init(
            executable: path,
            arguments: arguments,
            environment: currentEnvironment(),
            workingDirectory: nil,
            standardInput: theirs,
            standardOutput: nil,
            standardError: nil
        ))
        Glibc.close(theirs)
        let pid: pid_t
        switch spawned {
        case .success(let spawnedPID): pid = spawnedPID
        case .failure(let error):
            Glibc.close(ours)
            throw failure(error.code)
        }
        let reaper = DedicatedThread.start {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }
        if reaper != 0 {
            // Without a reaper it would only become a zombie at its exit; still better than no
            // watchdog at all, so carry on.
        }
        return GroupWatchdogClient(pid: pid, channel: ours)
    }

    /// The client of a watchdog this process started before an exec: `channel` is the socket
    /// it kept (inheritable), `pid` the watchdog, still our child.
    public static func adopt(pid: Int32, channel: Int32) -> GroupWatchdogClient {
        _ = fcntl(channel, F_SETFD, FD_CLOEXEC)
        _ = DedicatedThread.start {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }
        return GroupWatchdogClient(pid: pid, channel: channel)
    }

    /// The channel made inheritable, for an exec that keeps the watchdog; -1 when closed.
    public func inheritableChannel() -> Int32 {
        channel.withLock { descriptor in
            if descriptor >= 0 { _ = fcntl(descriptor, F_SETFD, 0) }
            return descriptor
        }
    }

    /// Announces a new process group (the spawner does this right after each spawn).
    public func register(_ processGroup: Int32) {
        send("+\(processGroup)\n")
    }

    /// Withdraws a group (the spawner does this once the leader was reaped and its group killed).
    public func unregister(_ processGroup: Int32) {
        send("-\(processGroup)\n")
    }

    /// Closes the channel: the watchdog kills the groups still registered and exits. For an
    /// orderly shutdown, after every instance was stopped (nothing is registered then).
    public func close() {
        let descriptor = channel.withLock { descriptor in
            defer { descriptor = -1 }
            return descriptor
        }
        if descriptor >= 0 {
            _ = Glibc.close(descriptor)
        }
    }

    deinit {
        close()
    }

    /// Errors are ignored: a dead watchdog cannot be helped from here, and this layer stays quiet
    /// (the messages are a few bytes, so a stream socket takes each in one piece).
    private func send(_ message: String) {
        channel.withLock { descriptor in
            guard descriptor >= 0 else { return }
            var bytes = Array(message.utf8)[...]
            while !bytes.isEmpty {
                let sent = bytes.withUnsafeBytes {
                    Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
                }
                if sent > 0 {
                    bytes = bytes.dropFirst(sent)
                } else if sent < 0 && errno == EINTR {
                    continue
                } else {
                    return
                }
            }
        }
    }

    private static func currentEnvironment() -> [String] {
        var result: [String] = []
        var entry = environ
        while let pointer = entry.pointee {
            result.append(String(cString: pointer))
            entry += 1
        }
        return result
    }
}

import Glibc

/// What a spawned child's dedicated thread does once the child runs: relay both pipes, notice
/// the leader's exit, kill the group and reap, relay the tail, publish the exit.
///
/// One `poll` covers the two pipes and a pidfd for the exit, so output and exit are seen by one
/// loop in the order they happen. Without pidfd (Linux < 5.3 or glibc < 2.36) the loop polls with
/// a 100 ms timeout and asks `waitid(WNOHANG)` instead.
struct ChildWatch {
    let process: SpawnedProcess
    var channels: [RelayChannel]
    /// Read ends of stdout and stderr, same order as `channels`; -1 once at end of file.
    var descriptors: [Int32]
    let watchdog: GroupWatchdogClient?
    /// How long, after the group was killed, the pipes may take to reach end of file. Only a
    /// process that left the group (setsid) can hold them open that long.
    let drainGrace: Duration

    mutating func run() {
        let pidfd = GNULibC.pidfdOpen?(process.pid, 0) ?? -1
        defer { if pidfd >= 0 { close(pidfd) } }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 1)
        defer { buffer.deallocate() }

        var exit: ExitStatus?
        var deadline = ContinuousClock.Instant.now
        while true {
            let pipesOpen = descriptors.contains { $0 >= 0 }
            if exit == nil && !pipesOpen && pidfd < 0 {
                // Nothing left to read (the child closed or handed off its output): just wait.
                exit = finishLeader(process.leaderState(block: true))
                deadline = .now + drainGrace
                continue
            }
            if let exit, !pipesOpen || ContinuousClock.now >= deadline {
                process.publish(exit)
                break
            }

            var pollSet = descriptors.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            if exit == nil && pidfd >= 0 {
                pollSet.append(pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0))
            }
            let timeout: Int32
            if exit != nil {
                timeout = Self.milliseconds(until: deadline)
            } else {
                timeout = pidfd >= 0 ? -1 : 100
            }
            // Negative descriptors are skipped by poll, which is how closed pipes drop out.
            if poll(&pollSet, nfds_t(pollSet.count), timeout) < 0 && errno != EINTR {
                // Cannot happen with valid arguments; avoid a busy loop if it ever does.
                _ = usleep(10_000)
            }

            for index in descriptors.indices where descriptors[index] >= 0 && pollSet[index].revents != 0 {
                relay(index, buffer)
            }
            if exit == nil {
                let state = process.leaderState(block: false)
                if state != .running {
                    exit = finishLeader(state)
                    deadline = .now + drainGrace
                }
            }
        }

        // After the grace period: whoever still holds a pipe left the group; keep relaying its
        // output until it closes, rather than cut it off or hand it SIGPIPE. The thread then
        // outlives the exit, which is rare and harmless.
        while descriptors.contains(where: { $0 >= 0 }) {
            var pollSet = descriptors.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            _ = poll(&pollSet, nfds_t(pollSet.count), -1)
            for index in descriptors.indices where descriptors[index] >= 0 && pollSet[index].revents != 0 {
                relay(index, buffer)
            }
        }
    }

    /// Reads once from a ready pipe (poll is level-triggered, so the rest comes next round, and
    /// two busy streams take turns). End of file or an error closes it and flushes its partial
    /// line.
    private mutating func relay(_ index: Int, _ buffer: UnsafeMutableRawBufferPointer) {
        let count = read(descriptors[index], buffer.baseAddress, buffer.count)
        if count > 0 {
            channels[index].consume(UnsafeRawBufferPointer(rebasing: buffer[..<count]))
        } else if count == 0 || (errno != EAGAIN && errno != EINTR) {
            channels[index].finish()
            // Closed through the process, under its lock, so a keeper that carries the pipes
            // across an exec never marks a descriptor number that was just freed.
            process.closeOutput(descriptors[index])
            descriptors[index] = -1
        }
    }

    private func finishLeader(_ state: SpawnedProcess.LeaderState) -> ExitStatus {
        let status = process.reapLeader(reapedElsewhere: state == .reapedElsewhere)
        watchdog?.unregister(process.pid)
        return status
    }

    private static func milliseconds(until deadline: ContinuousClock.Instant) -> Int32 {
        let remaining = deadline - .now
        guard remaining > .zero else { return 0 }
        let (seconds, attoseconds) = remaining.components
        return Int32(clamping: seconds * 1000 + attoseconds / 1_000_000_000_000_000 + 1)
    }
}

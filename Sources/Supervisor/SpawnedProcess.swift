import Glibc
import Synchronization

/// One running (or finished) child, handed out by ``ProcessSpawner/spawn(_:)``.
///
/// The spawner's dedicated thread owns the reaping; this object is what everyone else holds:
/// the state machine signals the group through it and awaits the exit through it, as many times
/// and from as many tasks as it likes.
public final class SpawnedProcess: Sendable {
    /// The instance name the process was spawned for.
    public let name: String
    /// The process id, which is also the process-group id: the child leads its own group, so
    /// signalling the group reaches everything it started.
    public let pid: Int32
    /// When it was spawned, for uptime in logs and for backoff's "healthy for long enough" rule.
    public let startedAt: ContinuousClock.Instant

    private let state = Mutex(State())
    /// For a process another process (the keeper) is the parent of: how a signal for its group
    /// gets there. Nil for our own children.
    private let remoteSignal: (@Sendable (Int32) -> Void)?

    private struct State {
        /// Set, under the lock, in the same critical section that reaps the leader. Until then the
        /// leader (alive or a zombie) pins its pid, so `kill(-pid, …)` cannot hit a recycled id.
        var leaderReaped = false
        var exit: ExitStatus?
        var nextWaiterID: UInt64 = 0
        var waiters: [UInt64: CheckedContinuation<ExitStatus?, Never>] = [:]
        /// Cancelled waiters whose cancellation handler ran before they registered.
        var cancelledWaiters: Set<UInt64> = []
        /// Our read ends of the child's stdout and stderr, -1 once closed.
        var output: [Int32] = []
    }

    init(name: String, pid: Int32, startedAt: ContinuousClock.Instant) {
        self.name = name
        self.pid = pid
        self.startedAt = startedAt
        self.remoteSignal = nil
    }

    /// A process whose parent is another process (the keeper): signals go through `signal`, and
    /// the exit arrives as a message and is handed to ``remoteExited(_:)``.
    public init(remote name: String, pid: Int32, startedAt: ContinuousClock.Instant, signal: @escaping @Sendable (Int32) -> Void) {
        self.name = name
        self.pid = pid
        self.startedAt = startedAt
        self.remoteSignal = signal
    }

    /// The parent reaped a remote process: from now on it is not signalled or sampled, and
    /// every waiter learns the exit. Only for processes made with ``init(remote:pid:startedAt:signal:)``.
    public func remoteExited(_ exit: ExitStatus) {
        precondition(remoteSignal != nil, "only a remote process's exit is reported from outside")
        let first = state.withLock { state in
            defer { state.leaderReaped = true }
            return !state.leaderReaped
        }
        if first { publish(exit) }
    }

    /// Sends `signal` to the whole process group (`kill(-pid, signal)`), so a stop reaches
    /// grandchildren too.
    ///
    /// Once the leader has been reaped this does nothing: its group was already killed then, and
    /// its pid may belong to someone else by now. Errors (the group is already empty) are ignored
    /// because "already gone" is what a caller that signals wants anyway.
    public func signalGroup(_ signal: Int32) {
        state.withLock { state in
            guard !state.leaderReaped else { return }
            if let remoteSignal {
                // The parent checks the pid against its own table of live children.
                remoteSignal(signal)
            } else {
                _ = kill(-pid, signal)
            }
        }
    }

    /// Memory and CPU use now; `nil` once the leader was reaped (or is a zombie).
    ///
    /// Prefer this to ``ProcessSampler/sample(pid:)``: it reads procfs under the same lock that
    /// reaping takes, so it can never sample another process that was given the recycled pid.
    /// (For a remote process the reaping happens elsewhere and the news comes a moment later;
    /// within that moment a recycled pid could be sampled once, which only misstates a figure.)
    public func sample() -> ProcessSample? {
        state.withLock { state in
            state.leaderReaped ? nil : ProcessSampler.sample(pid: pid)
        }
    }

    /// ``sample()`` summed over the process's whole tree (its descendants and its group), as
    /// `list` lists them; same guard against a recycled pid.
    public func sampleTree(in list: ProcessSampler.ProcessList) -> ProcessSample? {
        state.withLock { state in
            state.leaderReaped ? nil : ProcessSampler.sampleTree(leader: pid, in: list)
        }
    }

    /// Whether ``exitStatus()`` would answer at once.
    public var hasExited: Bool {
        state.withLock { $0.exit != nil }
    }

    /// Waits for the process to end and says how.
    ///
    /// It resolves after the leader was reaped, its group was killed and the output relay saw end
    /// of file on both pipes (or a short grace period passed, in case a process outside the group
    /// keeps a pipe open), so the last output lines are out before the caller logs the exit.
    ///
    /// Not cancellable: it returns when the process ends, which a caller ensures by signalling
    /// it. For a bounded wait use ``exitStatus(within:)``.
    public func exitStatus() async -> ExitStatus {
        let id = state.withLock { state in
            defer { state.nextWaiterID &+= 1 }
            return state.nextWaiterID
        }
        let status = await withCheckedContinuation { continuation in
            register(id, continuation)
        }
        // Only a cancellation handler resumes with nil, and this waiter has none.
        return status!
    }

    /// Waits at most `timeout` for the process to end; `nil` if it has not ended by then or the
    /// calling task was cancelled.
    ///
    /// This is the stop sequence's building block: signal, wait a bounded time, escalate.
    public func exitStatus(within timeout: Duration) async -> ExitStatus? {
        if let exit = state.withLock({ $0.exit }) {
            return exit
        }
        return await withTaskGroup(of: ExitStatus?.self) { group in
            group.addTask { await self.cancellableExitStatus() }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    private func cancellableExitStatus() async -> ExitStatus? {
        let id = state.withLock { state in
            defer { state.nextWaiterID &+= 1 }
            return state.nextWaiterID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                register(id, continuation)
            }
        } onCancel: {
            let continuation = state.withLock { state -> CheckedContinuation<ExitStatus?, Never>? in
                if let continuation = state.waiters.removeValue(forKey: id) {
                    return continuation
                }
                state.cancelledWaiters.insert(id)
                return nil
            }
            continuation?.resume(returning: nil)
        }
    }

    private func register(_ id: UInt64, _ continuation: CheckedContinuation<ExitStatus?, Never>) {
        enum Outcome { case wait, exited(ExitStatus), cancelled }
        let outcome = state.withLock { state -> Outcome in
            if state.cancelledWaiters.remove(id) != nil {
                return .cancelled
            }
            if let exit = state.exit {
                return .exited(exit)
            }
            state.waiters[id] = continuation
            return .wait
        }
        switch outcome {
        case .wait: break
        case .exited(let exit): continuation.resume(returning: exit)
        case .cancelled: continuation.resume(returning: nil)
        }
    }

    // MARK: - Carried across an exec of the parent (the keeper upgrading itself)

    /// The read ends of the child's stdout and stderr (-1 when closed), made inheritable: an
    /// exec keeps them, and the new program watches the process again with
    /// ``ProcessSpawner/adopt(name:pid:startedAt:output:)``.
    public func inheritableOutput() -> [Int32] {
        state.withLock { state in
            for fd in state.output where fd >= 0 {
                _ = fcntl(fd, F_SETFD, 0)
            }
            return state.output
        }
    }

    func setOutput(_ descriptors: [Int32]) {
        state.withLock { $0.output = descriptors }
    }

    func closeOutput(_ descriptor: Int32) {
        state.withLock { state in
            close(descriptor)
            if let index = state.output.firstIndex(of: descriptor) { state.output[index] = -1 }
        }
    }

    // MARK: - Called by the spawner's dedicated thread only

    /// Whether the leader has exited, without reaping it, so its pid (and with it the group id)
    /// stays reserved for ``reapLeader(reapedElsewhere:)``. With `block` it waits for the exit.
    /// `.reapedElsewhere` when the child was reaped by someone else (a `waitpid(-1)` elsewhere in
    /// the process, or SIGCHLD set to SIG_IGN).
    func leaderState(block: Bool) -> LeaderState {
        while true {
            var info = siginfo_t()
            let options = WEXITED | WNOWAIT | (block ? 0 : WNOHANG)
            if waitid(P_PID, id_t(pid), &info, options) == 0 {
                // With WNOHANG and nothing to report, Linux leaves the siginfo zeroed.
                return info.si_signo == SIGCHLD ? .exited : .running
            }
            if errno != EINTR {
                return .reapedElsewhere
            }
        }
    }

    enum LeaderState { case running, exited, reapedElsewhere }

    /// Kills the leader's process group (stragglers a crashed or careless leader left behind must
    /// not outlive it) and then reaps the leader, both under the lock that ``signalGroup(_:)``
    /// takes, so no group signal can be sent after the pid was released.
    func reapLeader(reapedElsewhere: Bool) -> ExitStatus {
        state.withLock { state in
            defer { state.leaderReaped = true }
            if reapedElsewhere {
                // The pid may already be recycled, so the group must not be signalled; the status
                // is lost. -1 cannot be a real exit code, which keeps this visible in logs.
                return .exited(-1)
            }
            // ESRCH (nothing left in the group) is the normal case and ignored.
            _ = kill(-pid, SIGKILL)
            var status: Int32 = 0
            while true {
                if waitpid(pid, &status, 0) == pid {
                    return ExitStatus(waitStatus: status)
                }
                if errno != EINTR {
                    return .exited(-1)
                }
            }
        }
    }

    /// Publishes the exit to every waiter, present and future.
    func publish(_ exit: ExitStatus) {
        let waiters = state.withLock { state in
            state.exit = exit
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in waiters {
            waiter.resume(returning: exit)
        }
    }
}

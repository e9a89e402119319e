import Dispatch
import Foundation
import Glibc
import Logging
import Supervisor
import Synchronization

/// The keeper at run time (`gateway run`): it holds the listening sockets, is the parent of every
/// instance, and starts, replaces and stops workers as ``KeeperStateMachine`` says. It knows no
/// HTTP: it spawns, signals and reaps instances when a worker asks, relays their output, and
/// tells every worker what happened to them.
///
/// Everything runs on one serial queue (`queue`); link readers, reapers and timers only hand
/// events to it. No NIO and no async runtime on its path, so it stays small and predictable.
public final class KeeperProcess: @unchecked Sendable {
    public struct Configuration: Sendable {
        /// The keeper's own binary: `_watchdog`, and workers by default.
        public var executable: String
        /// The argv (without the binary) of a worker.
        public var workerArguments: [String]
        /// The keeper's own argv (without the binary), for re-executing itself.
        public var keeperArguments: [String]
        public var listeners: [KeeperMessage.Listener]
        /// The listening sockets, in the order of `listeners`.
        public var sockets: [Int32]
        /// The environment workers start with.
        public var workerEnvironment: [String: String]
        public var readyTimeout: Duration
        /// How long instances get after SIGTERM when the keeper has to stop them itself.
        public var instanceStopTimeout: Duration

        public init(
            executable: String, workerArguments: [String], keeperArguments: [String], listeners: [KeeperMessage.Listener],
            sockets: [Int32], workerEnvironment: [String: String], readyTimeout: Duration = .seconds(60),
            instanceStopTimeout: Duration = .seconds(10)
        ) {
            self.executable = executable
            self.workerArguments = workerArguments
            self.keeperArguments = keeperArguments
            self.listeners = listeners
            self.sockets = sockets
            self.workerEnvironment = workerEnvironment
            self.readyTimeout = readyTimeout
            self.instanceStopTimeout = instanceStopTimeout
        }
    }

    /// A worker process while it lives (it leaves `workers` when it is reaped).
    final class Worker {
        let generation: Int
        let pid: Int32
        let link: KeeperLink
        let startedAt = ContinuousClock.now
        var readyAfter: Duration?
        var adopted = 0

        init(generation: Int, pid: Int32, link: KeeperLink, adopted: Int = 0, readyAfter: Duration? = nil) {
            self.generation = generation
            self.pid = pid
            self.link = link
            self.adopted = adopted
            self.readyAfter = readyAfter
        }
    }

    private let configuration: Configuration
    private let logger: Logger
    private let notifier: SystemdNotifier
    private let queue = DispatchQueue(label: "keeper")
    private var machine: KeeperStateMachine
    private var workers: [Int: Worker] = [:]
    private var table = InstanceTable()
    private var processes: [Int32: SpawnedProcess] = [:]
    /// Which worker ordered each instance: a worker that fails before it is ready takes the
    /// instances it started with it (no other worker knows them).
    private var orderedBy: [Int32: Int] = [:]
    private let spawner: ProcessSpawner
    /// The instances' last output lines (for `gateway logs`) and their log files: kept here, where
    /// the pipes are read, so they outlive every worker.
    private let output: OutputLog
    /// Sends the answers to `readLogs`, off the threads that relay instance output.
    private let logAnswers = DispatchQueue(label: "gateway.keeper.log-answers")
    /// The `log_file` of each instance, handed on when the keeper re-executes.
    private var logFiles: [Int32: LogFileSpec] = [:]
    private let watchdog: GroupWatchdogClient?
    /// The worker that asked for the upgrade under way, to be told how it ended.
    private var upgradeRequester: Int?
    private var upgradeStarted: ContinuousClock.Instant?
    private var signalSources: [DispatchSourceSignal] = []
    private var shutdownSignals = 0
    private var exitStatus: Int32?
    private let finished = DispatchSemaphore(value: 0)
    /// The state the previous keeper program handed over (this one re-executed in its place).
    private let resumed: KeeperState?
    /// The binary the keeper re-executes into once the upgrade under way is through: set when
    /// the new worker runs another binary than the keeper's, or the keeper's file was replaced.
    private var reexecInto: String?

    /// - Parameter resuming: the state a previous keeper program handed over by re-executing
    ///   into this one; nil for a fresh start.
    public init(configuration: Configuration, logger: Logger, notifier: SystemdNotifier, resuming: KeeperState? = nil) {
        self.configuration = configuration
        self.logger = logger
        self.notifier = notifier
        self.resumed = resuming
        self.machine = resuming?.machine ?? KeeperStateMachine(readyTimeout: configuration.readyTimeout)
        var watchdog: GroupWatchdogClient?
        if let pid = resuming?.watchdogPID, let channel = resuming?.watchdogChannel {
            watchdog = GroupWatchdogClient.adopt(pid: pid, channel: channel)
        } else {
            do {
                watchdog = try GroupWatchdogClient.start(executable: [configuration.executable])
            } catch {
                logger.warning("no process-group watchdog; instances may outlive a keeper killed with SIGKILL", metadata: ["error": "\(error)"])
            }
        }
        self.watchdog = watchdog
        // No `_launch` (parent-death signal) in front of instances: that signal fires when the
        // *thread* that spawned a child ends, and an exec of the keeper ends every thread. The
        // watchdog kills the instances' groups if the keeper dies.
        let output = OutputLog(logger: logger)
        self.output = output
        self.spawner = ProcessSpawner(launcher: [], relay: .standard(log: output), watchdog: watchdog)
    }

    /// Runs until the gateway has shut down; returns the exit status.
    public func run() -> Int32 {
        if !ProcessControl.becomeChildSubreaper() {
            logger.warning("cannot become a child subreaper; orphaned grandchildren of instances go to init")
        }
        queue.sync {
            for signal in [SIGTERM, SIGINT, SIGUSR2, SIGHUP] {
                Glibc.signal(signal, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: signal, queue: queue)
                source.setEventHandler { [self] in received(signal: signal) }
                source.resume()
                signalSources.append(source)
            }
            scheduleOrphanReaping()
            if let resumed {
                resume(resumed)
            } else {
                perform(machine.start())
            }
        }
        finished.wait()
        // The instances' last lines before the end are the ones most wanted in their files.
        output.flushFiles()
        return exitStatus ?? 0
    }

    // MARK: Signals

    private func received(signal: Int32) {
        switch signal {
        case SIGUSR2:
            logger.info("SIGUSR2: upgrading the worker")
            beginUpgrade(binary: nil, requester: nil)
        case SIGHUP:
            guard let serving = machine.serving, let worker = workers[serving] else {
                logger.warning("SIGHUP: no worker serves to reload; ignored")
                return
            }
            notifier.send(SystemdNotifier.reloading(status: "reloading the configuration", monotonicMicroseconds: SystemdNotifier.monotonicMicroseconds()))
            worker.link.send(.reload)
        default:
            shutdownSignals += 1
            if shutdownSignals > 1 {
                logger.warning("second signal during shutdown; exiting now", metadata: ["signal": "\(signal)"])
                for worker in workers.values { Glibc.kill(worker.pid, SIGKILL) }
                for process in processes.values { process.signalGroup(SIGKILL) }
                watchdog?.close()
                output.flushFiles()
                Glibc.exit(1)
            }
            logger.info("shutting down", metadata: ["signal": "\(signal == SIGTERM ? "SIGTERM" : "SIGINT")"])
            notifier.send(SystemdNotifier.stopping(status: "shutting down"))
            perform(machine.shutdownRequested())
        }
    }

    private func beginUpgrade(binary: String?, requester: Int?) {
        let actions = machine.upgradeRequested(binary: binary)
        if case .startWorker(_, let binary)? = actions.first {
            upgradeRequester = requester
            upgradeStarted = .now
            reexecInto = Self.changedBinary(upgradeBinary: binary, running: configuration.executable)
            notifier.send(SystemdNotifier.reloading(status: "upgrading the worker", monotonicMicroseconds: SystemdNotifier.monotonicMicroseconds()))
        } else if let requester, let worker = workers[requester] {
            // Refused at once: say why to the one who asked.
            for case .upgradeFailed(let reason) in actions {
                worker.link.send(.upgradeFinished(ok: false, message: reason))
            }
            logger.warning("upgrade refused", metadata: ["reason": "\(actions)"])
            return
        }
        perform(actions)
    }

    // MARK: The state machine's actions

    private func perform(_ actions: [KeeperStateMachine.Action]) {
        if reexecInto != nil {
            // After these actions, never in the middle of them.
            queue.async { [self] in reexecIfDue() }
        }
        for action in actions {
            switch action {
            case .startWorker(let generation, let binary):
                startWorker(generation: generation, binary: binary ?? configuration.executable)
            case .killWorker(let generation):
                if let worker = workers[generation] {
                    logger.warning("killing worker", metadata: ["generation": "\(generation)", "pid": "\(worker.pid)"])
                    Glibc.kill(worker.pid, SIGKILL)
                }
            case .armReadyTimer(let generation, let after):
                queue.asyncAfter(deadline: .now() + Self.dispatch(after)) { [self] in
                    if machine.starting == generation {
                        logger.error("worker not ready in time", metadata: ["generation": "\(generation)", "timeout": "\(after)"])
                    }
                    perform(machine.readyTimedOut(generation: generation))
                }
            case .letAccept(let generation):
                workers[generation]?.link.send(.startAccepting)
            case .armAcceptTimer(let old, let after):
                queue.asyncAfter(deadline: .now() + Self.dispatch(after)) { [self] in
                    if machine.awaitingStop?.old == old {
                        logger.error("the replaced worker did not close its listeners in time; killing it", metadata: ["generation": "\(old)"])
                    }
                    perform(machine.acceptHandoverTimedOut(old: old))
                }
            case .drainWorker(let generation):
                workers[generation]?.link.send(.drain(reason: "replaced by worker \(machine.serving ?? 0)"))
            case .shutDownWorker(let generation):
                workers[generation]?.link.send(.shutdown(reason: "the keeper is shutting down"))
            case .scheduleRestart(let after):
                logger.info("restarting the worker after a backoff", metadata: ["delay": "\(after)"])
                queue.asyncAfter(deadline: .now() + Self.dispatch(after)) { [self] in
                    perform(machine.restartTimerFired())
                }
            case .workerServing(let generation, let replaced):
                workerServing(generation: generation, replaced: replaced)
            case .upgradeFailed(let reason):
                logger.error("upgrade failed", metadata: ["reason": "\(reason)"])
                reexecInto = nil
                notifier.send(SystemdNotifier.ready(status: "upgrade failed: \(reason)", mainPID: getpid()))
                if let requester = upgradeRequester, let worker = workers[requester] {
                    worker.link.send(.upgradeFinished(ok: false, message: reason))
                }
                upgradeRequester = nil
                upgradeStarted = nil
            case .stopInstances:
                stopInstances()
            case .exitKeeper(let failed):
                finish(failed: failed)
            }
        }
    }

    private func workerServing(generation: Int, replaced: Int?) {
        guard let worker = workers[generation] else { return }
        worker.readyAfter = ContinuousClock.now - worker.startedAt
        let old = replaced.flatMap { workers[$0] }
        var metadata: Logger.Metadata = [
            "generation": "\(generation)", "pid": "\(worker.pid)", "adopted": "\(worker.adopted)",
            "ready_after": "\(Self.milliseconds(worker.readyAfter!)) ms",
        ]
        if let old {
            metadata["old_pid"] = "\(old.pid)"
            metadata["old_generation"] = "\(old.generation)"
        }
        if let upgradeStarted {
            metadata["upgrade_took"] = "\(Self.milliseconds(ContinuousClock.now - upgradeStarted)) ms"
        }
        // The handover line is logged once the old worker has drained (with its connections);
        // a worker that replaces nobody (the first, or after a crash) is logged here.
        if old == nil {
            logger.info("worker serving", metadata: metadata)
        } else {
            logger.info("new worker serving; the old one drains", metadata: metadata)
        }
        notifier.send(SystemdNotifier.ready(status: "serving: worker \(generation) (pid \(worker.pid))", mainPID: getpid()))
        if let requester = upgradeRequester, let asker = workers[requester] {
            asker.link.send(.upgradeFinished(ok: true, message: "worker \(generation) (pid \(worker.pid)) serves; worker \(old.map { "\($0.generation) (pid \($0.pid))" } ?? "none") drains"))
        }
        upgradeRequester = nil
        upgradeStarted = nil
    }

    // MARK: Workers

    private func startWorker(generation: Int, binary: String) {
        var ends: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &ends) == 0 else {
            logger.error("cannot start a worker: socketpair failed", metadata: ["error": "\(String(cString: strerror(errno)))"])
            queue.async { [self] in perform(machine.workerExited(generation: generation)) }
            return
        }
        let pid: Int32
        do {
            pid = try ProcessSpawner.spawnHelper(
                executable: binary, arguments: [binary] + configuration.workerArguments,
                environment: configuration.workerEnvironment.merging(["GATEWAY_WORKER_GENERATION": "\(generation)"]) { $1 },
                descriptor: ends[1])
        } catch {
            close(ends[0])
            close(ends[1])
            logger.error("cannot start a worker", metadata: ["generation": "\(generation)", "binary": "\(binary)", "error": "\(error)"])
            queue.async { [self] in perform(machine.workerExited(generation: generation)) }
            return
        }
        close(ends[1])
        let worker = Worker(generation: generation, pid: pid, link: KeeperLink(descriptor: ends[0]))
        logger.info("worker started", metadata: ["generation": "\(generation)", "pid": "\(pid)", "binary": "\(binary)"])
        attach(worker)
        worker.link.send(
            .hello(.init(
                keeperPID: getpid(), generation: generation, listeners: configuration.listeners, instances: table.instances,
                features: [KeeperMessage.Hello.logsFeature])),
            descriptors: configuration.sockets)
    }

    /// From now on the worker's messages and its exit reach the queue.
    private func attach(_ worker: Worker) {
        let generation = worker.generation
        let pid = worker.pid
        workers[generation] = worker
        worker.link.startReading(
            message: { [self] message, descriptors in
                descriptors.forEach { close($0) }
                queue.async { self.received(message, from: generation) }
            },
            closed: { _ in })
        let reaper = Thread { [self] in
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            let reaped = status
            queue.async { self.workerReaped(generation: generation, status: reaped) }
        }
        reaper.name = "worker-reaper"
        reaper.start()
    }

    private func workerReaped(generation: Int, status: Int32) {
        guard let worker = workers[generation] else { return }
        worker.link.shutDown()
        let exit = ExitStatus(waitStatus: status)
        let expected = machine.draining.contains(generation)
        if expected {
            logger.info("worker exited", metadata: ["generation": "\(generation)", "pid": "\(worker.pid)", "status": "\(exit)"])
        } else {
            logger.error("worker exited unexpectedly", metadata: ["generation": "\(generation)", "pid": "\(worker.pid)", "status": "\(exit)"])
        }
        if machine.starting == generation, machine.serving != nil {
            // A failed upgrade: instances it started are known to no one else.
            for (pid, owner) in orderedBy where owner == generation {
                processes[pid]?.signalGroup(SIGKILL)
            }
        }
        workers[generation] = nil
        perform(machine.workerExited(generation: generation))
    }

    private func received(_ message: KeeperMessage, from generation: Int) {
        guard let worker = workers[generation] else { return }
        switch message {
        case .ready(_, let adopted):
            worker.adopted = adopted
            perform(machine.workerReady(generation: generation))
        case .spawn(let order):
            spawn(order, for: worker)
        case .signal(let pid, let signal):
            // Only instances of ours, alive: a pid from a stale table is never signalled.
            processes[pid]?.signalGroup(signal)
        case .instanceState(let pid, let state):
            table.reported(pid: pid, state: state)
        case .readLogs(let request):
            // The lines are ready on whichever thread has them (at once, a new line, or the
            // wait's timer), possibly an instance's relay thread: encoding and sending happen on
            // a queue of their own, so a worker slow to read never stalls an instance's output.
            let link = worker.link
            let answers = logAnswers
            output.read(request.query) { page in
                answers.async { link.send(.logs(.init(request: request.request, page: page))) }
            }
        case .upgrade(let binary):
            logger.info("upgrade requested", metadata: ["by_generation": "\(generation)", "binary": "\(binary ?? configuration.executable)"])
            beginUpgrade(binary: binary, requester: generation)
        case .drained(let connections) where machine.phase != .running:
            logger.info("worker finished the shutdown", metadata: ["pid": "\(worker.pid)", "generation": "\(generation)", "connections_closed": "\(connections)"])
        case .drained(let connections):
            var metadata: Logger.Metadata = [
                "old_pid": "\(worker.pid)", "old_generation": "\(generation)", "connections_drained": "\(connections)",
            ]
            if let serving = machine.serving, let new = workers[serving] {
                metadata["pid"] = "\(new.pid)"
                metadata["generation"] = "\(serving)"
                metadata["adopted"] = "\(new.adopted)"
                metadata["ready_after"] = "\(new.readyAfter.map(Self.milliseconds) ?? 0) ms"
            }
            logger.info("worker handover finished", metadata: metadata)
        case .stoppedAccepting:
            perform(machine.workerStoppedAccepting(generation: generation))
        case .stopping(let reason):
            logger.info("the worker is shutting the gateway down", metadata: ["reason": "\(reason)"])
            notifier.send(SystemdNotifier.stopping(status: "shutting down: \(reason)"))
            perform(machine.workerStopping(generation: generation))
        case .reloaded(let ok, let message):
            notifier.send(SystemdNotifier.ready(status: ok ? "reloaded: \(message)" : "reload failed: \(message)", mainPID: getpid()))
        case .hello, .spawned, .spawnFailed, .exited, .drain, .shutdown, .reload, .upgradeFinished, .startAccepting, .logs:
            logger.error("keeper protocol error: a worker sent a keeper's message", metadata: ["generation": "\(generation)"])
            Glibc.kill(worker.pid, SIGKILL)
        }
    }

    // MARK: Instances

    private func spawn(_ order: KeeperMessage.SpawnOrder, for worker: Worker) {
        // During an upgrade only the new worker starts instances (two workers must not both
        // replace one that crashed); the old one's order fails and it lets it be. During a
        // shutdown no worker may.
        let owner = machine.starting ?? machine.serving
        guard worker.generation == owner, let placement = order.process.placement else {
            let reason = worker.generation == owner ? "an instance needs its deployment, index and port" : "worker \(owner.map(String.init) ?? "none") decides what runs now"
            worker.link.send(.spawnFailed(.init(request: order.request, reason: "cannot start \(order.process.name): \(reason)")))
            return
        }
        let request = order.process
        let process: SpawnedProcess
        do {
            process = try spawner.spawn(request)
        } catch {
            worker.link.send(.spawnFailed(.init(request: order.request, reason: "\(error)")))
            return
        }
        let startedAt = Date().timeIntervalSince1970
        table.spawned(placement, pid: process.pid, startedAt: startedAt)
        processes[process.pid] = process
        orderedBy[process.pid] = worker.generation
        logFiles[process.pid] = request.logFile
        worker.link.send(.spawned(.init(request: order.request, pid: process.pid, startedAt: startedAt)))
        watchExit(process)
    }

    private func watchExit(_ process: SpawnedProcess) {
        Task { [self] in
            let status = await process.exitStatus()
            queue.async { self.instanceExited(process.pid, status) }
        }
    }

    private func instanceExited(_ pid: Int32, _ status: ExitStatus) {
        table.exited(pid: pid)
        processes[pid] = nil
        orderedBy[pid] = nil
        logFiles[pid] = nil
        for worker in workers.values {
            worker.link.send(.exited(.init(pid: pid, status: status)))
        }
        if exitStatus != nil, processes.isEmpty { exitNow() }
    }

    private func stopInstances() {
        guard !processes.isEmpty else { return }
        logger.info("stopping the instances (no worker does)", metadata: ["instances": "\(processes.count)"])
        for process in processes.values { process.signalGroup(SIGTERM) }
        queue.asyncAfter(deadline: .now() + Self.dispatch(configuration.instanceStopTimeout)) { [self] in
            for process in processes.values { process.signalGroup(SIGKILL) }
        }
    }

    private func finish(failed: Bool) {
        exitStatus = failed ? 1 : 0
        if processes.isEmpty {
            exitNow()
        } else {
            // A worker that shut down stopped them already; these are the last moments of their
            // exits. Anything left is stopped and the exit waits for it.
            stopInstances()
        }
    }

    private func exitNow() {
        watchdog?.close()
        logger.info("keeper stopped", metadata: ["status": "\(exitStatus ?? 0)"])
        finished.signal()
    }

    /// A subreaper inherits every orphaned descendant; they are reaped here. Our own children
    /// (instances, workers, the watchdog) are reaped by their own threads and left alone.
    private func scheduleOrphanReaping() {
        queue.asyncAfter(deadline: .now() + 1) { [self] in
            var ours = Set(processes.keys)
            ours.formUnion(workers.values.map(\.pid))
            if let watchdog { ours.insert(watchdog.pid) }
            for pid in ChildList.children() where !ours.contains(pid) {
                var status: Int32 = 0
                _ = waitpid(pid, &status, WNOHANG)
            }
            scheduleOrphanReaping()
        }
    }

    // MARK: Re-executing in place

    /// The binary the keeper must re-execute into after an upgrade to `upgradeBinary` (nil: the
    /// keeper's own path), or nil when the keeper runs that very file already. A file replaced
    /// at the keeper's path (a package upgrade) is another file: its inode differs from the one
    /// the keeper runs.
    static func changedBinary(upgradeBinary: String?, running: String) -> String? {
        let target = upgradeBinary ?? running
        var own = stat()
        var file = stat()
        guard stat("/proc/self/exe", &own) == 0, stat(target, &file) == 0 else { return nil }
        return own.st_dev == file.st_dev && own.st_ino == file.st_ino ? nil : target
    }

    /// Once the upgrade is through (the new worker accepts, nothing is starting), the keeper
    /// execs the new binary in its own place: same pid, the sockets, the links to its workers,
    /// the instances' pipes and the watchdog channel kept open, the children still its own.
    private func reexecIfDue() {
        guard let binary = reexecInto, machine.isSettled, exitStatus == nil else { return }
        reexecInto = nil
        let state = KeeperState(
            machine: machine, listeners: configuration.listeners, sockets: configuration.sockets,
            workers: workers.values.map {
                .init(generation: $0.generation, pid: $0.pid, link: $0.link.descriptor, adopted: $0.adopted,
                      readyAfterMilliseconds: $0.readyAfter.map(Self.milliseconds))
            },
            instances: table.instances.compactMap { instance in
                processes[instance.pid].map {
                    .init(
                        instance: instance, orderedBy: orderedBy[instance.pid], output: $0.inheritableOutput(),
                        logFile: logFiles[instance.pid])
                }
            },
            watchdogPID: watchdog?.pid, watchdogChannel: watchdog?.inheritableChannel(), notifySocket: notifier.socketPath,
            previousBinary: configuration.executable)
        guard let json = try? JSONEncoder().encode(state) else { return }
        for fd in configuration.sockets + workers.values.map(\.link.descriptor) {
            _ = fcntl(fd, F_SETFD, 0)
        }
        setenv(KeeperState.variable, String(decoding: json, as: UTF8.self), 1)
        if let socket = notifier.socketPath { setenv("NOTIFY_SOCKET", socket, 1) }
        logger.info(
            "keeper re-executing in place",
            metadata: [
                "binary": "\(binary)", "previous_binary": "\(configuration.executable)", "workers": "\(workers.count)",
                "instances": "\(state.instances.count)",
            ])
        // The new program starts with this thread's signal mask: nothing blocked.
        var none = sigset_t()
        sigemptyset(&none)
        pthread_sigmask(SIG_SETMASK, &none, nil)
        let argv = ([binary] + configuration.keeperArguments).map { strdup($0) } + [nil]
        // Lines queued for the instances' log files would die with this program image.
        output.flushFiles()
        execv(binary, argv)
        // Still here: the exec failed, and this keeper goes on as it was. (The descriptors it
        // made inheritable do not leak: spawns close everything from 3 up in the child.)
        let code = errno
        argv.forEach { free($0) }
        unsetenv(KeeperState.variable)
        unsetenv("NOTIFY_SOCKET")
        logger.error("keeper re-exec failed; the running keeper goes on", metadata: ["binary": "\(binary)", "error": "\(String(cString: strerror(code)))"])
    }

    /// Picks up what the keeper program before this one handed over.
    private func resume(_ state: KeeperState) {
        for record in state.workers {
            _ = fcntl(record.link, F_SETFD, FD_CLOEXEC)
            attach(Worker(
                generation: record.generation, pid: record.pid, link: KeeperLink(descriptor: record.link), adopted: record.adopted,
                readyAfter: record.readyAfterMilliseconds.map { .milliseconds($0) }))
        }
        let now = Date().timeIntervalSince1970
        for record in state.instances {
            let instance = record.instance
            let age = max(0, now - instance.startedAt)
            let process = spawner.adopt(
                name: "\(instance.deployment)#\(instance.index)", pid: instance.pid, startedAt: .now - .milliseconds(Int64(age * 1000)),
                output: record.output, logFile: record.logFile)
            table.restore(instance)
            logFiles[instance.pid] = record.logFile
            processes[instance.pid] = process
            orderedBy[instance.pid] = record.orderedBy
            watchExit(process)
        }
        logger.info(
            "keeper re-executed in place",
            metadata: [
                "pid": "\(getpid())", "binary": "\(configuration.executable)", "previous_binary": "\(state.previousBinary)",
                "workers": "\(state.workers.count)", "instances": "\(state.instances.count)",
            ])
        if let serving = machine.serving, let worker = workers[serving] {
            notifier.send(SystemdNotifier.ready(status: "serving: worker \(serving) (pid \(worker.pid))", mainPID: getpid()))
        }
    }

    // MARK: Helpers

    static func dispatch(_ duration: Duration) -> DispatchTimeInterval {
        .milliseconds(Int(milliseconds(duration)))
    }

    static func milliseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}

/// The pids of our children, from `/proc/self/task/*/children` (the keeper reaps orphans).
enum ChildList {
    static func children() -> [Int32] {
        guard let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task") else { return [] }
        var result: [Int32] = []
        for task in tasks {
            guard let text = try? String(contentsOfFile: "/proc/self/task/\(task)/children", encoding: .utf8) else { continue }
            result += text.split(separator: " ").compactMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
        return result
    }
}

import Dispatch
import Foundation
import Glibc
import Supervisor
import Synchronization

/// A worker's link to its keeper, around ``WorkerStateMachine``: it carries the machine's
/// actions out, and it is the worker's ``ProcessLaunching``, so the supervisor starts and
/// signals instances through the keeper (their parent) without knowing it.
public final class WorkerLink: ProcessLaunching, OutputLogReading, Sendable {
    /// What the worker does with what the keeper says. Called on the link's reader thread; each
    /// should hand the work on (to a task) and return.
    public struct Handlers: Sendable {
        /// The hello: listen on `sockets` (in the order of `hello.listeners`) and adopt the
        /// instances (``adoptedInstances(_:)``), then call ``becameReady(adopted:)``.
        public var adopt: @Sendable (_ hello: KeeperMessage.Hello, _ sockets: [Int32]) -> Void
        /// Stop accepting, finish what is in flight, then call ``drainFinished(connections:)``.
        public var drain: @Sendable (_ reason: String) -> Void
        /// Run the gateway's graceful shutdown, then call ``drainFinished(connections:)``.
        public var shutdown: @Sendable (_ reason: String) -> Void
        /// Reload the configuration, then call ``reloadFinished(ok:message:)``.
        public var reload: @Sendable () -> Void
        /// Accept on the listening sockets (bound paused until now).
        public var startAccepting: @Sendable () -> Void
        /// The worker must end now (the drain is done, or the link broke).
        public var exit: @Sendable (_ reason: String, _ failure: Bool) -> Void

        public init(
            adopt: @escaping @Sendable (KeeperMessage.Hello, [Int32]) -> Void,
            drain: @escaping @Sendable (String) -> Void,
            shutdown: @escaping @Sendable (String) -> Void,
            reload: @escaping @Sendable () -> Void,
            startAccepting: @escaping @Sendable () -> Void,
            exit: @escaping @Sendable (String, Bool) -> Void
        ) {
            self.adopt = adopt
            self.drain = drain
            self.shutdown = shutdown
            self.reload = reload
            self.startAccepting = startAccepting
            self.exit = exit
        }
    }

    /// How long a spawn order may wait for its answer before it counts as failed.
    public static let spawnAnswerTimeout: Duration = .seconds(10)

    private struct State {
        var machine = WorkerStateMachine()
        var handlers: Handlers?
        /// Spawn orders waiting for their answer, by request number.
        var waiting: [Int: Handoff<SpawnAnswer>] = [:]
        /// Every instance process this worker knows, by pid: exits are published to them.
        var processes: [Int32: SpawnedProcess] = [:]
        var upgradeWaiter: CheckedContinuation<(ok: Bool, message: String), Never>?
        /// `readLogs` requests waiting for their answer, by request number.
        var logWaiters: [Int: CheckedContinuation<Result<OutputPage, OutputLogError>, Never>] = [:]
        var hello: KeeperMessage.Hello?
    }

    private let link: KeeperLink
    private let state = Mutex(State())

    public init(descriptor: Int32) {
        link = KeeperLink(descriptor: descriptor)
    }

    /// Who the keeper is and which worker this is, once the hello came.
    public var hello: KeeperMessage.Hello? { state.withLock { $0.hello } }

    public func start(_ handlers: Handlers) {
        state.withLock { $0.handlers = handlers }
        link.startReading(
            message: { [self] message, descriptors in received(message, descriptors) },
            closed: { [self] _ in
                let actions = state.withLock { $0.machine.linkClosed() }
                perform(actions, descriptors: [])
            })
    }

    private func received(_ message: KeeperMessage, _ descriptors: [Int32]) {
        let actions = state.withLock { $0.machine.received(message) }
        perform(actions, descriptors: descriptors)
    }

    private func perform(_ actions: [WorkerStateMachine.Action], descriptors: [Int32]) {
        let handlers = state.withLock { $0.handlers }
        for action in actions {
            switch action {
            case .adopt(let hello):
                state.withLock { $0.hello = hello }
                handlers?.adopt(hello, descriptors)
            case .send(let message):
                link.send(message)
            case .spawned(let answer, let order):
                // Registered here, on the reader thread, before the next message is read: an
                // instance that exits at once has its `exited` right behind this, and it must
                // find the process (the spawning thread may not have woken up yet).
                let age = max(0, Date().timeIntervalSince1970 - answer.startedAt)
                let process = remoteProcess(
                    name: order.process.name, pid: answer.pid, startedAt: .now - .milliseconds(Int64(age * 1000)))
                let waiter = state.withLock { $0.waiting.removeValue(forKey: order.request) }
                waiter?.finish(.success(process))
            case .spawnFailed(let reason, let order):
                let waiter = state.withLock { $0.waiting.removeValue(forKey: order.request) }
                waiter?.finish(.failure(reason))
            case .instanceExited(let exit):
                let process = state.withLock { $0.processes.removeValue(forKey: exit.pid) }
                process?.remoteExited(exit.status)
            case .startDraining(let reason):
                handlers?.drain(reason)
            case .startShutdown(let reason):
                handlers?.shutdown(reason)
            case .reload:
                handlers?.reload()
            case .startAccepting:
                handlers?.startAccepting()
            case .upgradeFinished(let ok, let message):
                let waiter = state.withLock { state in
                    defer { state.upgradeWaiter = nil }
                    return state.upgradeWaiter
                }
                waiter?.resume(returning: (ok, message))
            case .logsRead(let answer):
                let waiter = state.withLock { $0.logWaiters.removeValue(forKey: answer.request) }
                waiter?.resume(returning: .success(answer.page))
            case .exit(let reason, let failure):
                // Orders still waiting will never be answered.
                let (waiters, logWaiters) = state.withLock { state in
                    defer {
                        state.waiting.removeAll()
                        state.logWaiters.removeAll()
                    }
                    return (Array(state.waiting.values), Array(state.logWaiters.values))
                }
                waiters.forEach { $0.finish(.failure("the keeper link closed")) }
                logWaiters.forEach { $0.resume(returning: .failure(OutputLogError("the keeper link closed"))) }
                handlers?.exit(reason, failure)
            }
        }
    }

    // MARK: The worker's side

    /// The hello's instances as processes the supervisor can adopt, by deployment. Their exits
    /// arrive through the link like those of the instances this worker starts.
    public func adoptedInstances(_ hello: KeeperMessage.Hello) -> [String: [AdoptedInstance]] {
        var result: [String: [AdoptedInstance]] = [:]
        let now = Date().timeIntervalSince1970
        for instance in hello.instances {
            let age = max(0, now - instance.startedAt)
            let process = remoteProcess(
                name: "\(instance.deployment)#\(instance.index)", pid: instance.pid,
                startedAt: .now - .milliseconds(Int64(age * 1000)))
            result[instance.deployment, default: []].append(
                AdoptedInstance(index: instance.index, port: instance.port, process: process, lastState: instance.lastState))
        }
        return result
    }

    /// The worker accepts on its sockets and the adopted instances were checked.
    public func becameReady(adopted: Int) {
        let actions = state.withLock { $0.machine.becameReady(workerPID: getpid(), adopted: adopted) }
        perform(actions, descriptors: [])
    }

    /// The drain (after `drain` or `shutdown`) is done: tell the keeper, then exit.
    public func drainFinished(connections: Int) {
        let actions = state.withLock { $0.machine.drainFinished(connections: connections) }
        perform(actions, descriptors: [])
    }

    /// An instance's state changed (READY, STOPPING): the keeper keeps it for the next worker.
    public func reportState(pid: Int32, state instanceState: String) {
        link.send(.instanceState(pid: pid, state: instanceState))
    }

    /// A replaced worker closed its listeners: its successor may accept.
    public func stoppedAccepting() {
        let actions = state.withLock { $0.machine.stoppedAccepting() }
        perform(actions, descriptors: [])
    }

    /// The gateway shuts down on its own (`POST /shutdown`): the keeper must not replace us.
    public func shuttingDown(reason: String) {
        let actions = state.withLock { $0.machine.shuttingDown(reason: reason) }
        perform(actions, descriptors: [])
    }

    public func reloadFinished(ok: Bool, message: String) {
        let actions = state.withLock { $0.machine.reloadFinished(ok: ok, message: message) }
        perform(actions, descriptors: [])
    }

    /// Asks the keeper to replace this worker with one from `binary` (nil: the keeper's own)
    /// and waits for the outcome: ok once the new worker serves (this one drains next).
    public func requestUpgrade(binary: String?) async -> (ok: Bool, message: String) {
        await withCheckedContinuation { continuation in
            let outcome = state.withLock { state -> (ok: Bool, message: String)? in
                if state.upgradeWaiter != nil { return (false, "an upgrade is already under way") }
                guard let action = state.machine.upgrade(binary: binary), case .send(let message) = action else {
                    return (false, "this worker is not serving (it is starting or draining)")
                }
                guard link.send(message) else { return (false, "the keeper link is closed") }
                state.upgradeWaiter = continuation
                return nil
            }
            if let outcome { continuation.resume(returning: outcome) }
        }
    }

    // MARK: Output

    /// How much longer than the asked-for wait a logs request may take before it fails.
    public static let logsAnswerGrace: Duration = .seconds(5)

    /// ``OutputLogReading``: the keeper reads the instances' pipes and keeps their lines, so
    /// they outlive this worker.
    public func read(_ query: OutputQuery) async -> Result<OutputPage, OutputLogError> {
        await withCheckedContinuation { (continuation: CheckedContinuation<Result<OutputPage, OutputLogError>, Never>) in
            let outcome = state.withLock { locked -> Result<OutputPage, OutputLogError>? in
                guard case .send(let message)? = locked.machine.readLogs(query), case .readLogs(let request) = message else {
                    return .failure(OutputLogError(
                        locked.machine.keeperKeepsLogs
                            ? "this worker has no keeper link any more (it is draining or its keeper is gone)"
                            : "this gateway's keeper keeps no output (it predates `gateway logs`); it will once it runs the new binary"))
                }
                locked.logWaiters[request.request] = continuation
                // Sent under the lock, so the answer cannot overtake the registration.
                guard link.send(message) else {
                    locked.logWaiters[request.request] = nil
                    return .failure(OutputLogError("the keeper link is closed"))
                }
                let timeout = Duration.milliseconds(query.waitMilliseconds) + Self.logsAnswerGrace
                Task { [self] in
                    try? await Task.sleep(for: timeout)
                    let waiter = state.withLock { $0.logWaiters.removeValue(forKey: request.request) }
                    waiter?.resume(returning: .failure(OutputLogError("the keeper did not answer within \(timeout)")))
                }
                return nil
            }
            if let outcome { continuation.resume(returning: outcome) }
        }
    }

    // MARK: ProcessLaunching

    public func spawn(_ request: SpawnRequest) throws(SpawnError) -> SpawnedProcess {
        func failure(_ reason: String) -> SpawnError {
            SpawnError(name: request.name, arguments: request.arguments, errno: 0, context: reason)
        }
        let waiter = Handoff<SpawnAnswer>()
        let sent = state.withLock { state -> Bool in
            guard case .send(let message)? = state.machine.spawn(request), case .spawn(let order) = message else { return false }
            state.waiting[order.request] = waiter
            // Sent under the lock, so the answer cannot overtake the registration.
            return link.send(message)
        }
        guard sent else {
            throw failure("cannot start \(request.name): no keeper link to start it through (the worker is draining or its keeper is gone)")
        }
        switch waiter.wait(timeout: Self.spawnAnswerTimeout) {
        case .none:
            throw failure("cannot start \(request.name): the keeper did not answer within \(Self.spawnAnswerTimeout)")
        case .failure(let reason)?:
            throw failure(reason)
        case .success(let process)?:
            return process
        }
    }

    private func remoteProcess(name: String, pid: Int32, startedAt: ContinuousClock.Instant) -> SpawnedProcess {
        let link = self.link
        let process = SpawnedProcess(remote: name, pid: pid, startedAt: startedAt) { signal in
            link.send(.signal(pid: pid, signal: signal))
        }
        state.withLock { $0.processes[pid] = process }
        return process
    }
}

/// A spawn order's answer, handed from the link's reader thread to the waiting spawn.
enum SpawnAnswer: Sendable {
    case success(SpawnedProcess)
    case failure(String)
}

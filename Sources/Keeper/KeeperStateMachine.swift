/// The keeper's view of its workers, as a pure state machine: events in, actions out; the
/// process that carries the actions out (spawning, signalling, timers, systemd) stays thin.
///
/// At most one worker serves and at most one is starting (an upgrade, or a restart after a
/// crash); any number may be draining after being replaced. The rules:
/// - a new worker serves only once it says it is ready; only then is the one it replaces told
///   to drain, so something accepts at every moment;
/// - a worker that fails before it is ready is reported and the serving one goes on; if none
///   serves (the first start, or after a crash), another is started after a backoff;
/// - a serving worker that dies is replaced after a short backoff (the sockets stay open in the
///   keeper meanwhile, so clients wait in the backlog instead of being refused);
/// - on shutdown every worker is told to shut down (it drains and stops the instances through
///   the keeper); if none is left to do it, the keeper stops the instances itself; the keeper
///   exits when no worker is left.
public struct KeeperStateMachine: Sendable, Codable, Equatable {
    public enum Action: Equatable, Sendable {
        /// Start worker `generation` from `binary` (nil: the keeper's own) and send it hello.
        case startWorker(generation: Int, binary: String?)
        /// Kill a starting worker that did not get ready within `readyTimeout`.
        case killWorker(generation: Int)
        /// Wake the machine with `readyTimedOut(generation:)` after `readyTimeout`.
        case armReadyTimer(generation: Int, after: Duration)
        /// Tell a replaced worker to stop accepting, finish what it has, and exit.
        case drainWorker(generation: Int)
        /// Let a ready worker accept on the sockets (it binds them paused).
        case letAccept(generation: Int)
        /// Wake the machine with `acceptHandoverTimedOut(old:)` after `after`.
        case armAcceptTimer(old: Int, after: Duration)
        /// Tell a worker to run the gateway's graceful shutdown (drain, stop instances, exit).
        case shutDownWorker(generation: Int)
        /// Wake the machine with `restartTimerFired()` after `after`.
        case scheduleRestart(after: Duration)
        /// A worker serves: systemd READY=1, the handover log line.
        case workerServing(generation: Int, replaced: Int?)
        /// An upgrade could not be done; the serving worker (if any) goes on.
        case upgradeFailed(reason: String)
        /// No worker is left to stop the instances: the keeper stops them itself.
        case stopInstances
        /// Every worker is gone after a shutdown; `failed` when the gateway never served (the first
        /// worker could not start: a bad certificate, say), which is the keeper's exit status.
        case exitKeeper(failed: Bool)
    }

    public enum Phase: Equatable, Sendable, Codable {
        case running
        case shuttingDown
        case done
    }

    /// Restart delays after crashes in a row; the last one repeats.
    public static let restartDelays: [Duration] = [.milliseconds(100), .milliseconds(500), .seconds(1), .seconds(2), .seconds(5)]

    public let readyTimeout: Duration
    public private(set) var phase = Phase.running
    /// The worker that serves now.
    public private(set) var serving: Int?
    /// The worker that is starting, and whether it is an upgrade (it replaces `serving`).
    public private(set) var starting: Int?
    public private(set) var draining: Set<Int> = []
    /// Workers started so far; the next one gets `generation + 1`.
    public private(set) var generation = 0
    /// Workers that died (or failed to start) in a row without one becoming ready.
    public private(set) var crashesInARow = 0
    private var restartPending = false
    /// Some worker was ready once. Until then a worker that fails is a failed start of the
    /// gateway (exit), not a crash to restart from.
    public private(set) var everServed = false
    /// The relay of accepting: a new worker serves but waits to accept until the worker it
    /// replaced says it closed its listeners. Two processes must not accept on one socket at
    /// once: NIO takes a readiness without a connection (the other process took it) for a broken
    /// invariant. In between, connections wait in the backlog; none is refused.
    public private(set) var awaitingStop: AcceptRelay?

    public struct AcceptRelay: Equatable, Sendable, Codable {
        public var new: Int
        public var old: Int
    }

    /// Nothing is under way that a timer of this process would have to finish: no worker
    /// starting, no accept relay, no restart pending. Only then may the keeper re-execute
    /// itself (its timers do not survive an exec).
    public var isSettled: Bool {
        starting == nil && awaitingStop == nil && !restartPending && phase == .running && serving != nil
    }
    /// How long a replaced worker gets to close its listeners before it is killed.
    public static let acceptHandoverTimeout: Duration = .seconds(2)

    public init(readyTimeout: Duration = .seconds(30)) {
        self.readyTimeout = readyTimeout
    }

    /// The keeper has bound its sockets: the first worker starts.
    public mutating func start() -> [Action] {
        startWorker(binary: nil)
    }

    public mutating func upgradeRequested(binary: String?) -> [Action] {
        guard phase == .running else { return [.upgradeFailed(reason: "the gateway is shutting down")] }
        if let starting {
            return [.upgradeFailed(reason: "worker \(starting) is still starting")]
        }
        guard serving != nil else { return [.upgradeFailed(reason: "no worker serves yet; one is being restarted")] }
        return startWorker(binary: binary)
    }

    public mutating func workerReady(generation worker: Int) -> [Action] {
        guard worker == starting else { return [] }
        starting = nil
        crashesInARow = 0
        everServed = true
        if phase == .shuttingDown {
            // Started just before the shutdown: it shuts down with the rest.
            draining.insert(worker)
            return [.shutDownWorker(generation: worker)]
        }
        var actions: [Action] = [.workerServing(generation: worker, replaced: serving)]
        if let replaced = serving {
            draining.insert(replaced)
            awaitingStop = AcceptRelay(new: worker, old: replaced)
            actions += [.drainWorker(generation: replaced), .armAcceptTimer(old: replaced, after: Self.acceptHandoverTimeout)]
        } else {
            actions.append(.letAccept(generation: worker))
        }
        serving = worker
        return actions
    }

    /// The replaced worker closed its listeners: the new one accepts.
    public mutating func workerStoppedAccepting(generation old: Int) -> [Action] {
        guard let pending = awaitingStop, pending.old == old else { return [] }
        awaitingStop = nil
        return pending.new == serving ? [.letAccept(generation: pending.new)] : []
    }

    /// The replaced worker did not say it stopped accepting in time: it is killed (its
    /// connections are lost, but a worker that does not answer cannot be trusted to serve
    /// them) and the new one accepts.
    public mutating func acceptHandoverTimedOut(old: Int) -> [Action] {
        guard let pending = awaitingStop, pending.old == old else { return [] }
        awaitingStop = nil
        return [.killWorker(generation: old)] + (pending.new == serving ? [.letAccept(generation: pending.new)] : [])
    }

    public mutating func readyTimedOut(generation worker: Int) -> [Action] {
        guard worker == starting else { return [] }
        // Its exit (workerExited) does the rest.
        return [.killWorker(generation: worker)]
    }

    public mutating func workerExited(generation worker: Int) -> [Action] {
        var relay: [Action] = []
        if let pending = awaitingStop, pending.old == worker {
            // It died before saying so; its listeners are closed now.
            relay = workerStoppedAccepting(generation: worker)
        }
        return relay + workerGone(worker)
    }

    private mutating func workerGone(_ worker: Int) -> [Action] {
        if worker == starting {
            starting = nil
            crashesInARow += 1
            if phase == .shuttingDown { return finishShutdownIfDone() }
            if !everServed {
                // The gateway could not start at all: what the worker printed says why.
                phase = .done
                return [.stopInstances, .exitKeeper(failed: true)]
            }
            if serving != nil {
                return [.upgradeFailed(reason: "worker \(worker) exited before it was ready; worker \(serving!) keeps serving")]
            }
            return scheduleRestart()
        }
        if worker == serving {
            serving = nil
            if phase == .shuttingDown { return finishShutdownIfDone() }
            crashesInARow += 1
            // An upgrade under way becomes the replacement; else a new worker after a backoff.
            return starting == nil ? scheduleRestart() : []
        }
        if draining.remove(worker) != nil, phase == .shuttingDown {
            return finishShutdownIfDone()
        }
        return []
    }

    public mutating func restartTimerFired() -> [Action] {
        restartPending = false
        guard phase == .running, serving == nil, starting == nil else { return [] }
        return startWorker(binary: nil)
    }

    /// The serving worker shuts the gateway down on its own (`POST /shutdown`): it stops the
    /// instances itself, and when it exits the keeper exits too instead of replacing it.
    public mutating func workerStopping(generation worker: Int) -> [Action] {
        guard phase == .running, worker == serving else { return [] }
        phase = .shuttingDown
        serving = nil
        draining.insert(worker)
        var actions: [Action] = []
        if let starting {
            actions.append(.killWorker(generation: starting))
        }
        return actions
    }

    public mutating func shutdownRequested() -> [Action] {
        guard phase == .running else { return [] }
        phase = .shuttingDown
        var actions: [Action] = []
        if let serving {
            draining.insert(serving)
            self.serving = nil
            actions.append(.shutDownWorker(generation: serving))
        } else {
            // Nobody would stop the instances.
            actions.append(.stopInstances)
        }
        if let starting {
            actions.append(.killWorker(generation: starting))
        }
        return actions + finishShutdownIfDone()
    }

    private mutating func startWorker(binary: String?) -> [Action] {
        generation += 1
        starting = generation
        return [.startWorker(generation: generation, binary: binary), .armReadyTimer(generation: generation, after: readyTimeout)]
    }

    private mutating func scheduleRestart() -> [Action] {
        guard !restartPending else { return [] }
        restartPending = true
        let delay = Self.restartDelays[min(max(crashesInARow - 1, 0), Self.restartDelays.count - 1)]
        return [.scheduleRestart(after: delay)]
    }

    private mutating func finishShutdownIfDone() -> [Action] {
        guard phase == .shuttingDown, serving == nil, starting == nil, draining.isEmpty else { return [] }
        phase = .done
        return [.exitKeeper(failed: false)]
    }
}

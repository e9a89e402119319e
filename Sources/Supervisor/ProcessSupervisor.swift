import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Runs the instances of the supervised deployments: spawn, health checks, rotation, respawn
/// with backoff, the drain before every planned stop, rolling restarts, reload and shutdown.
///
/// One actor holds every slot's state, so an exit, a failed check and an operator's stop are
/// decided one at a time. Everything that waits (drains, exits, probes) is awaited; after each
/// await the code checks again which generation is current, because the actor may have handled
/// other events meanwhile.
public actor ProcessSupervisor {
    /// One started process of a slot. A slot has one current generation; during a surge also
    /// the replacement, and while an old one drains after a surge, that one too (`retiring`).
    final class Generation {
        let process: SpawnedProcess
        let spec: ProcessSpec
        let endpoint: InstanceEndpoint
        let startedAt: ContinuousClock.Instant
        /// The argv as executed (the spec's command expanded for this instance).
        let arguments: [String]
        /// `instanceReady` was sent and `instanceGone` not yet.
        var inRotation = false
        var readyAt: ContinuousClock.Instant?
        /// A planned stop is under way: its exit is expected, not a crash.
        var stopping = false
        /// The supervisor killed it, and why (failed checks, not ready in time).
        var killReason: String?
        var failures = 0
        var exitHandled = false
        /// When the check for readiness began: the start, or for an adopted process the
        /// adoption (its `ready_timeout` counts from there).
        var checkingSince: ContinuousClock.Instant
        /// Handed over running (``ProcessSupervisor/adopt(deployment:spec:instances:)``).
        var adopted = false
        let ready = Completion<Bool>()
        let exit = Completion<ExitStatus>()
        var health: Task<Void, Never>?
        /// The `instanceReady` call in progress or done; `instanceGone` waits for it, so the
        /// gateway never hears "gone" before "ready".
        var readyNotice: Task<Void, Never>?
        var lastSample: (sample: ProcessSample, at: ContinuousClock.Instant)?

        init(process: SpawnedProcess, spec: ProcessSpec, endpoint: InstanceEndpoint) {
            self.process = process
            self.spec = spec
            self.endpoint = endpoint
            self.arguments = spec.command.map { CommandExpansion.expand($0, ProcessSupervisor.variables(endpoint)) }
            self.startedAt = process.startedAt
            self.checkingSince = process.startedAt
        }
    }

    /// `shop#2`: a place for one instance, kept across its restarts.
    final class Slot {
        let deployment: String
        let index: Int
        var current: Generation?
        var surge: Generation?
        var retiring: [Generation] = []
        var state: Supervisor.InstanceState = .stopped
        var reason = "not started yet"
        /// The slot should run (false after an operator's stop, FAILED, removal, shutdown).
        var wanted = true
        /// An operator stopped it: a roll leaves it stopped (a FAILED slot is rolled back up).
        var operatorStopped = false
        var tracker: RespawnTracker
        /// Restarts after a crash (an exit nobody asked for, a failed start, a health kill).
        var crashes = 0
        /// Restarts an operator or a reload asked for.
        var plannedRestarts = 0
        var lastExit: String?
        var lastPort: Int?
        var backoff: Task<Void, Never>?

        init(deployment: String, index: Int, policy: RespawnPolicy) {
            self.deployment = deployment
            self.index = index
            self.tracker = RespawnTracker(policy: policy)
        }

        var name: String { "\(deployment)#\(index)" }

        var live: [Generation] {
            ([current, surge].compactMap { $0 } + retiring).filter { $0.exit.value == nil }
        }
    }

    final class DeploymentState {
        var spec: ProcessSpec
        var slots: [Slot] = []
        var rolling = false

        init(spec: ProcessSpec) {
            self.spec = spec
        }
    }

    private let spawner: any ProcessLaunching
    private let delegate: any SupervisorDelegate
    private let logger: Logger
    private let host: String
    private let baseEnvironment: [String: String]
    private var deployments: [String: DeploymentState] = [:]
    private var order: [String] = []
    private var shuttingDown = false
    /// Another supervisor (a new worker's) has taken the processes over: this one decides
    /// nothing any more, it only lets its own in-flight work end.
    private var detached = false
    /// Told of every instance state change and roll step, for the gateway's event stream.
    private let events: (@Sendable (SupervisorEvent) -> Void)?

    /// - Parameters:
    ///   - host: the address instances listen on and are reached at (they get `$PORT` only).
    ///   - environment: the environment every instance starts from (the gateway's own).
    public init(
        spawner: any ProcessLaunching, delegate: any SupervisorDelegate, logger: Logger,
        host: String = "127.0.0.1", environment: [String: String],
        events: (@Sendable (SupervisorEvent) -> Void)? = nil
    ) {
        self.events = events
        self.spawner = spawner
        self.delegate = delegate
        self.logger = logger
        self.host = host
        self.baseEnvironment = environment
    }

    /// Every state change of a slot goes through here, so each is told once, in order.
    private func enter(_ slot: Slot, _ state: Supervisor.InstanceState, reason: String) {
        let previous = slot.state
        slot.state = state
        slot.reason = reason
        events?(.instanceState(deployment: slot.deployment, index: slot.index, pid: slot.current?.process.pid, from: previous, to: state, reason: reason))
    }

    // MARK: Deployments

    /// Starts a deployment's instances; returns at once (they join the rotation when ready).
    public func add(deployment name: String, spec: ProcessSpec) {
        guard deployments[name] == nil, !shuttingDown else { return }
        let state = DeploymentState(spec: spec)
        deployments[name] = state
        order.append(name)
        for index in 1...max(1, spec.instances) {
            let slot = Slot(deployment: name, index: index, policy: spec.respawn)
            state.slots.append(slot)
            start(slot, spec: spec)
        }
    }

    /// Takes over a deployment whose instances run already (started by a previous worker, kept by
    /// the keeper): each adopted process becomes its slot's current one and joins the rotation
    /// only after its health check passes (its `ready_timeout` counts from now); slots without one
    /// are started. Processes the spec has no slot for (the instance count went down, or two
    /// for one slot after an interrupted roll) are stopped.
    public func adopt(deployment name: String, spec: ProcessSpec, instances: [AdoptedInstance]) {
        guard deployments[name] == nil, !shuttingDown else { return }
        let state = DeploymentState(spec: spec)
        deployments[name] = state
        order.append(name)
        var extras: [AdoptedInstance] = []
        // The newest process of a slot is the one a roll would have kept.
        let bySlot = Dictionary(grouping: instances, by: \.index).mapValues { $0.sorted { $0.process.startedAt > $1.process.startedAt } }
        for index in 1...max(1, spec.instances) {
            let slot = Slot(deployment: name, index: index, policy: spec.respawn)
            state.slots.append(slot)
            guard let adopted = bySlot[index]?.first else {
                start(slot, spec: spec)
                continue
            }
            extras += bySlot[index]!.dropFirst()
            let endpoint = InstanceEndpoint(deployment: name, index: index, host: host, port: adopted.port, pid: adopted.process.pid)
            let generation = Generation(process: adopted.process, spec: spec, endpoint: endpoint)
            generation.checkingSince = .now
            generation.adopted = true
            slot.current = generation
            slot.lastPort = adopted.port
            enter(slot, .starting, reason: "adopted from the previous worker; waiting for its health check")
            logger.info(
                "[\(slot.name)] adopted",
                metadata: [
                    "pid": "\(adopted.process.pid)", "port": "\(adopted.port)", "state": "STARTING",
                    "last_state": "\(adopted.lastState ?? "-")",
                ])
            watch(slot, generation)
        }
        extras += bySlot.filter { $0.key < 1 || $0.key > max(1, spec.instances) }.values.flatMap { $0 }
        for extra in extras {
            logger.info(
                "[\(name)#\(extra.index)] not part of the deployment any more; stopping it",
                metadata: ["pid": "\(extra.process.pid)"])
            extra.process.signalGroup(spec.stopSignal)
            let process = extra.process
            Task {
                if await process.exitStatus(within: spec.stopTimeout) == nil { process.signalGroup(SIGKILL) }
            }
        }
    }

    /// Waits until every adopted instance has passed its first health check or given up (it
    /// died, or its ready timeout passed); says how many are ready. A new worker accepts
    /// connections only after this, so it never answers 503 for instances it is still checking.
    public func settled() async -> Int {
        var ready = 0
        for slot in order.compactMap({ deployments[$0] }).flatMap(\.slots) {
            guard let generation = slot.current, generation.adopted else { continue }
            if await generation.ready.wait() { ready += 1 }
        }
        return ready
    }

    /// A new worker has adopted the processes: from now on this supervisor starts, checks,
    /// restarts and stops nothing, and exits are no longer its business. The processes keep
    /// running.
    public func detach() {
        detached = true
        shuttingDown = true
        for slot in deployments.values.flatMap(\.slots) {
            slot.backoff?.cancel()
            slot.backoff = nil
            for generation in slot.live { generation.health?.cancel() }
        }
    }

    /// Drains and stops every instance of a deployment, then forgets it.
    public func remove(deployment name: String) async {
        guard let state = deployments[name] else { return }
        await stopSlots(state.slots, reason: "deployment removed", drain: true)
        deployments[name] = nil
        order.removeAll { $0 == name }
    }

    /// Applies a changed spec: nothing if equal; a changed instance count alone scales; any
    /// other change rolls the deployment onto the new spec. Returns what was done.
    public func update(deployment name: String, spec: ProcessSpec) async -> String {
        guard let state = deployments[name] else { return "deployment '\(name)' is not supervised" }
        // A roll in progress (an operator's restart) finishes first; this one then rolls onto
        // the new spec, so the running processes always end up matching the configuration.
        while state.rolling {
            do {
                try await Task.sleep(for: .milliseconds(50))
            } catch {
                return "not applied: cancelled while a rolling restart of '\(name)' was running"
            }
        }
        let old = state.spec
        guard old != spec else { return "unchanged" }
        if old.sameExceptInstances(spec) {
            state.spec = spec
            await scale(state, to: spec.instances, name: name)
            return "scaled from \(old.instances) to \(spec.instances) instances"
        }
        let report = await roll(state, name: name, spec: spec, countChange: spec.instances != old.instances)
        return report.ok ? "rolled onto the new process spec (\(report.message))" : "roll failed: \(report.message)"
    }

    private func scale(_ state: DeploymentState, to count: Int, name: String) async {
        let count = max(1, count)
        if state.slots.count > count {
            let extra = Array(state.slots[count...])
            // Stopped while still listed (the stop finds generations through the slots), then
            // removed.
            await stopSlots(extra, reason: "scaled down", drain: true)
            state.slots.removeAll { slot in extra.contains { $0 === slot } }
        } else {
            for index in (state.slots.count + 1)...count {
                let slot = Slot(deployment: name, index: index, policy: state.spec.respawn)
                state.slots.append(slot)
                start(slot, spec: state.spec)
            }
        }
    }

    /// The end of the gateway: every instance is stopped (drained first only if `drain`; the
    /// gateway's own drain has usually emptied them already) and nothing is respawned.
    public func shutdown(drain: Bool) async {
        shuttingDown = true
        let slots = order.compactMap { deployments[$0] }.flatMap(\.slots)
        await stopSlots(slots, reason: "gateway shutting down", drain: drain)
    }

    // MARK: Operator operations

    /// A rolling restart: for a one-instance deployment a surge (the replacement is ready and in
    /// rotation before the old one drains), otherwise `max_unavailable` instances at a time are
    /// drained, stopped, started and waited for. Stops at the first replacement that does not
    /// get ready; the instances not reached yet keep serving.
    public func restart(deployment name: String) async throws(SupervisorError) -> RollReport {
        guard let state = deployments[name] else {
            throw SupervisorError(.notFound, "no supervised deployment '\(name)'")
        }
        guard !state.rolling else {
            throw SupervisorError(.conflict, "a rolling restart of '\(name)' is already running")
        }
        return await roll(state, name: name, spec: state.spec, countChange: false)
    }

    private func roll(_ state: DeploymentState, name: String, spec: ProcessSpec, countChange: Bool) async -> RollReport {
        state.rolling = true
        defer { state.rolling = false }
        let previousSpec = state.spec
        state.spec = spec
        logger.info("rolling restart started", metadata: ["deployment": "\(name)", "instances": "\(state.slots.count)"])
        events?(.rollStarted(deployment: name, instances: state.slots.count))
        var steps: [RollStep] = []
        if state.slots.count == 1 {
            let step = await surge(state.slots[0], spec: spec)
            events?(.rollStep(step))
            steps.append(step)
        } else {
            let batchSize = max(1, spec.maxUnavailable)
            var index = 0
            while index < state.slots.count {
                let batch = Array(state.slots[index..<min(index + batchSize, state.slots.count)])
                index += batchSize
                var batchSteps: [RollStep] = []
                for slot in batch {
                    let step = await replace(slot, spec: spec)
                    events?(.rollStep(step))
                    batchSteps.append(step)
                }
                steps += batchSteps
                if batchSteps.contains(where: { $0.error != nil }) { break }
            }
        }
        if countChange { await scale(state, to: spec.instances, name: name) }
        let failed = steps.first { $0.error != nil }
        let message: String
        if let failed {
            let untouched = state.slots.filter { slot in !steps.contains { $0.instance == slot.name } }.map(\.name)
            message = (failed.error ?? "failed")
                + (untouched.isEmpty ? "" : "; the roll stopped, \(untouched.joined(separator: ", ")) kept serving")
            // The instances not reached keep the spec they run, also when they respawn; the next
            // reload of the same file tries the roll again.
            state.spec = previousSpec
            logger.error("rolling restart failed", metadata: ["deployment": "\(name)", "error": "\(message)"])
        } else {
            message = "rolled \(steps.count) instance\(steps.count == 1 ? "" : "s")"
            logger.info("rolling restart finished", metadata: ["deployment": "\(name)", "instances": "\(steps.count)"])
        }
        events?(.rollFinished(deployment: name, ok: failed == nil, message: message))
        return RollReport(deployment: name, ok: failed == nil, message: message, steps: steps)
    }

    /// Stops one or all instances of a deployment (drained first); they stay STOPPED.
    public func stop(deployment name: String, index: Int?) async throws(SupervisorError) -> [InstanceStatus] {
        let slots = try slots(of: name, index: index)
        for slot in slots {
            slot.wanted = false
            slot.operatorStopped = true
        }
        await stopSlots(slots, reason: "stopped by operator", drain: true)
        return slots.map(status(of:)).flatMap { $0 }
    }

    /// Starts stopped or FAILED instances (a fresh respawn table) and waits until they are ready.
    public func start(deployment name: String, index: Int?) async throws(SupervisorError) -> [InstanceStatus] {
        guard !shuttingDown else { throw SupervisorError(.conflict, "the gateway is shutting down") }
        let slots = try slots(of: name, index: index)
        let spec = deployments[name]!.spec
        var waits: [(Slot, Generation?)] = []
        for slot in slots {
            slot.wanted = true
            slot.operatorStopped = false
            slot.tracker.reset()
            if let current = slot.current, current.exit.value == nil {
                waits.append((slot, current))
                continue
            }
            slot.backoff?.cancel()
            slot.backoff = nil
            waits.append((slot, start(slot, spec: spec)))
        }
        var problems: [String] = []
        for (slot, generation) in waits {
            if await generation?.ready.wait() != true {
                problems.append("\(slot.name) did not get ready: \(slot.reason)")
            }
        }
        guard problems.isEmpty else { throw SupervisorError(.failed, problems.joined(separator: "; ")) }
        return slots.map(status(of:)).flatMap { $0 }
    }

    /// Restarts one instance the way a roll would (a surge if it is the deployment's only one).
    public func restart(deployment name: String, index: Int) async throws(SupervisorError) -> RollReport {
        let slot = try slots(of: name, index: index)[0]
        let state = deployments[name]!
        guard !state.rolling else {
            throw SupervisorError(.conflict, "a rolling restart of '\(name)' is running")
        }
        state.rolling = true
        defer { state.rolling = false }
        let step = state.slots.count == 1 ? await surge(slot, spec: state.spec) : await replace(slot, spec: state.spec)
        return RollReport(
            deployment: name, ok: step.error == nil, message: step.error ?? "restarted \(slot.name)", steps: [step])
    }

    private func slots(of name: String, index: Int?) throws(SupervisorError) -> [Slot] {
        guard let state = deployments[name] else {
            throw SupervisorError(.notFound, "no supervised deployment '\(name)'")
        }
        guard let index else { return state.slots }
        guard let slot = state.slots.first(where: { $0.index == index }) else {
            throw SupervisorError(.notFound, "deployment '\(name)' has no instance #\(index) (it has \(state.slots.count))")
        }
        return [slot]
    }

    /// The spec a deployment's instances run now (after a failed roll: the one before it).
    public func spec(of deployment: String) -> ProcessSpec? {
        deployments[deployment]?.spec
    }

    // MARK: Status

    /// The process table: one row per slot, plus a row for a surge replacement or a retiring
    /// instance while a roll has two processes in one slot.
    ///
    /// Memory and CPU are summed over each instance's process tree; the host's process list that
    /// takes is read before the actor is entered, so a host with many processes does not hold up
    /// exits and health checks.
    public nonisolated func status() async -> [InstanceStatus] {
        let processes = ProcessSampler.processList()
        return await rows(processes)
    }

    private func rows(_ processes: ProcessSampler.ProcessList) -> [InstanceStatus] {
        order.compactMap { deployments[$0] }.flatMap { $0.slots.flatMap { status(of: $0, processes: processes) } }
    }

    /// The instance numbers of a supervised deployment (nil: no such deployment), without the
    /// cost of a status.
    public func indices(of deployment: String) -> [Int]? {
        deployments[deployment]?.slots.map(\.index)
    }

    private func status(of slot: Slot) -> [InstanceStatus] {
        status(of: slot, processes: nil)
    }

    /// - Parameter processes: the host's process list, to sum each instance's tree; nil samples
    ///   the leaders alone (the answers of stop and start, which need no figures).
    private func status(of slot: Slot, processes: ProcessSampler.ProcessList?) -> [InstanceStatus] {
        var rows: [InstanceStatus] = []
        let now = ContinuousClock.now
        func row(_ generation: Generation?, state: Supervisor.InstanceState, reason: String) -> InstanceStatus {
            var sample: ProcessSample?
            var cpu: Double?
            if let generation, generation.exit.value == nil {
                sample = processes.map { generation.process.sampleTree(in: $0) } ?? generation.process.sample()
                if let sample {
                    let (previous, at) = generation.lastSample ?? (ProcessSample(rssBytes: 0, cpuSeconds: 0), generation.startedAt)
                    cpu = sample.cpuPercent(since: previous, elapsed: now - at)
                    generation.lastSample = (sample, now)
                }
            }
            let alive = generation.map { $0.exit.value == nil } ?? false
            return InstanceStatus(
                deployment: slot.deployment, index: slot.index, name: slot.name,
                pid: alive ? generation?.process.pid : nil, port: alive ? generation?.endpoint.port : nil,
                address: alive ? generation?.endpoint.address : nil,
                state: state, reason: reason, ready: generation?.inRotation ?? false && !(generation?.stopping ?? false),
                restarts: slot.crashes + slot.plannedRestarts, crashes: slot.crashes, plannedRestarts: slot.plannedRestarts,
                uptime: alive ? generation.map { now - $0.startedAt } : nil,
                rssBytes: sample?.rssBytes, cpuPercent: cpu, command: alive ? generation?.arguments : nil, lastExit: slot.lastExit)
        }
        rows.append(row(slot.current, state: slot.state, reason: slot.reason))
        if let surge = slot.surge, surge.exit.value == nil {
            rows.append(row(surge, state: surge.readyAt == nil ? .starting : .ready, reason: "replacement (rolling restart)"))
        }
        for old in slot.retiring where old.exit.value == nil {
            rows.append(row(old, state: .stopping, reason: "replaced (rolling restart), draining"))
        }
        return rows
    }

    // MARK: Starting

    /// Spawns a new generation in `slot` (as its current one, or as a surge replacement).
    /// A spawn that fails counts as a crash of the slot. Returns nil then.
    @discardableResult
    private func start(_ slot: Slot, spec: ProcessSpec, asSurge: Bool = false) -> Generation? {
        // A roll or an operator's start that was waiting when the shutdown began starts nothing.
        guard !shuttingDown, let owner = deployments[slot.deployment], owner.slots.contains(where: { $0 === slot }) else {
            return nil
        }
        let inUse = Set(deployments.values.flatMap(\.slots).flatMap(\.live).map(\.endpoint.port))
        guard let port = PortAllocator.pick(range: spec.ports, inUse: inUse, preferred: asSurge ? nil : slot.lastPort, host: host) else {
            let reason = "no free port in \(spec.ports.lowerBound)-\(spec.ports.upperBound)"
            logger.error("[\(slot.name)] cannot start: \(reason)")
            if !asSurge { crashed(slot, reason: reason, healthyFor: .zero) }
            return nil
        }
        var environment = baseEnvironment
        for (key, value) in spec.environment { environment[key] = value }
        let instance = Self.variables(InstanceEndpoint(deployment: slot.deployment, index: slot.index, host: host, port: port, pid: 0))
        environment.merge(instance) { _, own in own }
        var logFile = spec.logFile
        if let path = logFile?.path { logFile?.path = CommandExpansion.expand(path, instance) }
        let process: SpawnedProcess
        do {
            process = try spawner.spawn(SpawnRequest(
                name: slot.name,
                arguments: spec.command.map { CommandExpansion.expand($0, instance) },
                workingDirectory: spec.workingDirectory.map { CommandExpansion.expand($0, instance) },
                environment: environment,
                placement: .init(deployment: slot.deployment, index: slot.index, port: port),
                logFile: logFile))
        } catch {
            logger.error("[\(slot.name)] cannot start: \(error)")
            if !asSurge { crashed(slot, reason: "\(error)", healthyFor: .zero) }
            return nil
        }
        let endpoint = InstanceEndpoint(deployment: slot.deployment, index: slot.index, host: host, port: port, pid: process.pid)
        let generation = Generation(process: process, spec: spec, endpoint: endpoint)
        if asSurge {
            slot.surge = generation
        } else {
            slot.current = generation
            slot.lastPort = port
            enter(slot, .starting, reason: "waiting for the first health check")
        }
        logger.info(
            "[\(slot.name)] started\(asSurge ? " (replacement)" : "")",
            metadata: ["pid": "\(process.pid)", "port": "\(port)", "state": "STARTING"])
        watch(slot, generation)
        return generation
    }

    /// From its start (or adoption) on, a generation's exit is awaited and its health checked.
    private func watch(_ slot: Slot, _ generation: Generation) {
        Task { await self.watchExit(slot, generation) }
        generation.health = Task { await self.checkHealth(slot, generation) }
    }

    private func watchExit(_ slot: Slot, _ generation: Generation) async {
        let status = await generation.process.exitStatus()
        await handleExit(slot, generation, status)
    }

    /// Probes quickly until the first pass (a roll waits for it), then every `interval`.
    private func checkHealth(_ slot: Slot, _ generation: Generation) async {
        let check = generation.spec.health
        let startingInterval = min(check.interval, .milliseconds(100))
        while generation.exit.value == nil, !generation.stopping, !Task.isCancelled {
            try? await Task.sleep(for: generation.readyAt == nil ? startingInterval : check.interval)
            guard generation.exit.value == nil, !generation.stopping, !Task.isCancelled else { return }
            if generation.readyAt == nil, ContinuousClock.now - generation.checkingSince > generation.spec.readyTimeout {
                await kill(slot, generation, reason: "not ready within \(Self.format(generation.spec.readyTimeout))")
                return
            }
            let result = await delegate.probe(generation.endpoint, check: check)
            guard generation.exit.value == nil, !generation.stopping, !Task.isCancelled else { return }
            switch result {
            case .passed:
                generation.failures = 0
                if generation.readyAt == nil { await becameReady(slot, generation) }
            case .failed(let why):
                guard generation.readyAt != nil else { continue }
                generation.failures += 1
                logger.warning(
                    "[\(slot.name)] health check failed (\(generation.failures) of \(check.failures)): \(why)",
                    metadata: ["pid": "\(generation.process.pid)"])
                if generation.failures >= check.failures {
                    await kill(slot, generation, reason: "health check failed \(check.failures) times in a row (\(why))")
                    return
                }
            }
        }
    }

    private func becameReady(_ slot: Slot, _ generation: Generation) async {
        let now = ContinuousClock.now
        generation.readyAt = now
        generation.inRotation = true
        if generation === slot.current {
            enter(slot, .ready, reason: "health check passed")
        }
        logger.info(
            "[\(slot.name)] ready after \(Self.format(now - generation.checkingSince)); in rotation",
            metadata: ["pid": "\(generation.process.pid)", "port": "\(generation.endpoint.port)", "state": "READY"])
        let delegate = self.delegate
        let endpoint = generation.endpoint
        let notice = Task { await delegate.instanceReady(endpoint) }
        generation.readyNotice = notice
        await notice.value
        generation.ready.complete(generation.exit.value == nil)
    }

    /// The node manager's rule: out of rotation first, then the group is killed; the exit then
    /// goes the way of a crash (respawn with backoff).
    private func kill(_ slot: Slot, _ generation: Generation, reason: String) async {
        guard generation.exit.value == nil, generation.killReason == nil else { return }
        generation.killReason = reason
        logger.error("[\(slot.name)] \(reason); killing its process group", metadata: ["pid": "\(generation.process.pid)"])
        if generation.inRotation {
            generation.inRotation = false
            await generation.readyNotice?.value
            await delegate.instanceGone(generation.endpoint)
        }
        generation.process.signalGroup(SIGKILL)
    }

    // MARK: Exits

    private func handleExit(_ slot: Slot, _ generation: Generation, _ status: ExitStatus) async {
        guard !generation.exitHandled else { return }
        generation.exitHandled = true
        if detached {
            generation.ready.complete(false)
            generation.exit.complete(status)
            return
        }
        let uptime = ContinuousClock.now - generation.startedAt
        let text = "exited with \(status) after \(Self.format(uptime, precise: true))"
        if generation.stopping {
            logger.info("[\(slot.name)] \(text)", metadata: ["pid": "\(generation.process.pid)"])
        } else {
            logger.warning("[\(slot.name)] \(text)", metadata: ["pid": "\(generation.process.pid)"])
        }
        slot.lastExit = text
        generation.health?.cancel()
        generation.ready.complete(false)
        let wasInRotation = generation.inRotation
        generation.inRotation = false

        if generation === slot.current, !generation.stopping {
            slot.current = nil
            if slot.surge != nil {
                // A replacement is starting; the roll decides what happens to the slot.
                enter(slot, .starting, reason: "\(generation.killReason ?? text); replacement starting")
            } else {
                let healthyFor = generation.readyAt.map { ContinuousClock.now - $0 } ?? .zero
                crashed(slot, reason: generation.killReason ?? text, healthyFor: healthyFor)
            }
        }
        if wasInRotation {
            await generation.readyNotice?.value
            await delegate.instanceGone(generation.endpoint)
        }
        generation.exit.complete(status)
    }

    /// The slot's process ended without being asked to (or could not start): BACKOFF and a
    /// delayed respawn, or FAILED when the policy gives up.
    private func crashed(_ slot: Slot, reason: String, healthyFor: Duration) {
        guard slot.wanted, !shuttingDown else {
            enter(slot, .stopped, reason: reason)
            return
        }
        switch slot.tracker.crashed(healthyFor: healthyFor) {
        case .giveUp(let restarts):
            slot.wanted = false
            enter(slot, .failed, reason: "\(reason); gave up after \(restarts) restarts in a row (max_restarts)")
            logger.error("[\(slot.name)] FAILED: \(slot.reason); start it again with `gateway start \(slot.name)`")
        case .restart(let delay, let attempt):
            enter(slot, .backoff, reason: "\(reason); restart \(attempt) in \(Self.format(delay))")
            logger.info("[\(slot.name)] BACKOFF: restarting in \(Self.format(delay)) (restart \(attempt) in a row)")
            slot.backoff?.cancel()
            slot.backoff = Task {
                try? await Task.sleep(for: delay)
                guard !Task.isCancelled else { return }
                self.respawn(slot)
            }
        }
    }

    private func respawn(_ slot: Slot) {
        slot.backoff = nil
        guard slot.wanted, !shuttingDown, slot.state == .backoff, slot.current == nil,
            let state = deployments[slot.deployment], state.slots.contains(where: { $0 === slot })
        else { return }
        slot.crashes += 1
        start(slot, spec: state.spec)
    }

    // MARK: Stopping

    /// The core promise: drain (out of rotation, then wait for requests in flight), then the
    /// stop signal to the group, then SIGKILL after `stop_timeout`.
    private func stop(_ slot: Slot, _ generation: Generation, reason: String, drain: Bool) async -> DrainReport? {
        guard generation.exit.value == nil else { return nil }
        guard !generation.stopping else {
            _ = await generation.exit.wait()
            return nil
        }
        generation.stopping = true
        generation.health?.cancel()
        // A probe already sent finishes first (bounded by its timeout), so no health check is in
        // flight when the stop signal goes out.
        await generation.health?.value
        let spec = generation.spec
        if generation === slot.current {
            enter(slot, .stopping, reason: reason)
        }
        logger.info("[\(slot.name)] stopping: \(reason)", metadata: ["pid": "\(generation.process.pid)", "state": "STOPPING"])
        var report: DrainReport?
        if drain, generation.inRotation {
            let drained = await delegate.drain(generation.endpoint, timeout: spec.drainTimeout)
            report = drained
            if drained.drained {
                logger.info("[\(slot.name)] drained: no request in flight after \(Self.format(drained.duration, precise: true))")
            } else {
                logger.warning(
                    "[\(slot.name)] drain timed out after \(Self.format(drained.duration)) with \(drained.active) requests in flight")
            }
        }
        if generation.exit.value == nil {
            logger.info(
                "[\(slot.name)] sending \(ExitStatus.signalName(spec.stopSignal) ?? "signal \(spec.stopSignal)") to its process group",
                metadata: ["pid": "\(generation.process.pid)"])
            generation.process.signalGroup(spec.stopSignal)
            let timer = Task {
                try? await Task.sleep(for: spec.stopTimeout)
                guard !Task.isCancelled, generation.exit.value == nil else { return }
                self.logger.warning(
                    "[\(slot.name)] did not exit within \(Self.format(spec.stopTimeout)); sending KILL to its process group",
                    metadata: ["pid": "\(generation.process.pid)"])
                generation.process.signalGroup(SIGKILL)
            }
            _ = await generation.exit.wait()
            timer.cancel()
        }
        if generation === slot.current {
            slot.current = nil
            enter(slot, .stopped, reason: reason)
        }
        return report
    }

    /// Stops slots concurrently (each drains on its own), cancelling respawns.
    private func stopSlots(_ slots: [Slot], reason: String, drain: Bool) async {
        await withTaskGroup(of: Void.self) { group in
            for slot in slots {
                slot.wanted = false
                slot.backoff?.cancel()
                slot.backoff = nil
                if slot.live.isEmpty {
                    enter(slot, .stopped, reason: reason)
                }
                for generation in slot.live {
                    let id = ObjectIdentifier(generation)
                    group.addTask { await self.stop(slotOf: id, reason: reason, drain: drain) }
                }
            }
        }
    }

    /// `stop` for a generation found by identity (task-group children cannot carry the
    /// actor's classes).
    private func stop(slotOf id: ObjectIdentifier, reason: String, drain: Bool) async {
        for slot in deployments.values.flatMap(\.slots) {
            if let generation = slot.live.first(where: { ObjectIdentifier($0) == id }) {
                _ = await stop(slot, generation, reason: reason, drain: drain)
                slot.retiring.removeAll { $0 === generation }
                if slot.surge === generation { slot.surge = nil }
                return
            }
        }
    }

    // MARK: Rolling

    /// Stop-then-start of one slot of a multi-instance deployment.
    private func replace(_ slot: Slot, spec: ProcessSpec) async -> RollStep {
        let old = slot.current
        var step = RollStep(
            instance: slot.name, oldPid: old?.process.pid, newPid: nil, oldPort: old?.endpoint.port, newPort: nil,
            drained: true, drainTime: .zero, outOfRotation: .zero, error: nil)
        // An operator's stop stands: a roll does not bring the instance back.
        guard !slot.operatorStopped else { return step }
        slot.backoff?.cancel()
        slot.backoff = nil
        let leftRotation = ContinuousClock.now
        if let old, old.exit.value == nil {
            if let report = await stop(slot, old, reason: "rolling restart", drain: true) {
                step.drained = report.drained
                step.drainTime = report.duration
            }
        }
        if slot.current === old { slot.current = nil }
        guard slot.current == nil else {
            step.error = "\(slot.name) was started by someone else during the roll"
            return step
        }
        // Stopped by an operator, removed or shut down while it drained: nothing to start.
        guard !slot.operatorStopped, !shuttingDown, deployments[slot.deployment]?.slots.contains(where: { $0 === slot }) == true else {
            return step
        }
        slot.wanted = true
        slot.tracker.reset()
        if old != nil { slot.plannedRestarts += 1 }
        guard let generation = start(slot, spec: spec) else {
            step.error = "\(slot.name) could not start: \(slot.reason)"
            return step
        }
        step.newPid = generation.process.pid
        step.newPort = generation.endpoint.port
        if await generation.ready.wait() {
            step.outOfRotation = ContinuousClock.now - leftRotation
        } else {
            step.error = "\(slot.name) did not get ready within \(Self.format(spec.readyTimeout)): \(slot.lastExit ?? slot.reason)"
        }
        return step
    }

    /// Start-then-stop of the only slot: the replacement runs on another port, joins the
    /// rotation, and only then the old instance drains and stops. If the replacement never gets
    /// ready it is killed and the old instance goes on serving.
    private func surge(_ slot: Slot, spec: ProcessSpec) async -> RollStep {
        let old = slot.current
        var step = RollStep(
            instance: slot.name, oldPid: old?.process.pid, newPid: nil, oldPort: old?.endpoint.port, newPort: nil,
            drained: true, drainTime: .zero, outOfRotation: .zero, error: nil)
        guard !slot.operatorStopped else { return step }
        guard let old, old.exit.value == nil else {
            // Nothing to keep serving: a plain start.
            slot.current = nil
            return await replace(slot, spec: spec)
        }
        guard let replacement = start(slot, spec: spec, asSurge: true) else {
            step.error = "the replacement of \(slot.name) could not start"
            return step
        }
        step.newPid = replacement.process.pid
        step.newPort = replacement.endpoint.port
        let replacementReady = await replacement.ready.wait()
        // Between its check and now an operator may have stopped the slot (or it was removed):
        // the replacement goes too. A replacement that died meanwhile takes the not-ready path.
        if replacementReady, slot.operatorStopped || !slot.wanted {
            if slot.surge === replacement { slot.surge = nil }
            _ = await stop(slot, replacement, reason: "the slot was stopped during the roll", drain: true)
            step.error = "\(slot.name) was stopped during the roll"
            return step
        }
        guard replacementReady, replacement.exit.value == nil else {
            if slot.surge === replacement { slot.surge = nil }
            if replacement.exit.value == nil {
                await kill(slot, replacement, reason: "replacement not ready")
                _ = await replacement.exit.wait()
            }
            step.error = "the replacement of \(slot.name) did not get ready within \(Self.format(spec.readyTimeout)): "
                + (replacement.killReason ?? slot.lastExit ?? "it exited")
            if slot.current == nil { crashed(slot, reason: slot.reason, healthyFor: .zero) }
            return step
        }
        // The replacement serves; the old instance leaves.
        slot.surge = nil
        let previous = slot.current
        slot.current = replacement
        slot.lastPort = replacement.endpoint.port
        enter(slot, .ready, reason: "replaced pid \(old.process.pid) (rolling restart)")
        slot.plannedRestarts += 1
        slot.tracker.reset()
        if let previous, previous !== replacement, previous.exit.value == nil {
            slot.retiring.append(previous)
            if let report = await stop(slot, previous, reason: "replaced by pid \(replacement.process.pid) (rolling restart)", drain: true) {
                step.drained = report.drained
                step.drainTime = report.duration
            }
            slot.retiring.removeAll { $0 === previous }
        }
        if replacement.exit.value != nil, slot.current === replacement {
            slot.current = nil
            crashed(slot, reason: slot.lastExit ?? "exited", healthyFor: .zero)
        }
        return step
    }

    /// What `$PORT`, `$GATEWAY_DEPLOYMENT` and `$GATEWAY_INSTANCE` stand for in an instance's
    /// command, working directory and log file (and what its environment gets).
    static func variables(_ instance: InstanceEndpoint) -> [String: String] {
        ["PORT": String(instance.port), "GATEWAY_DEPLOYMENT": instance.deployment, "GATEWAY_INSTANCE": instance.name]
    }

    // MARK: Formatting

    static func seconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    /// `12.4 s`, `250 ms`, `2m` style for logs.
    static func format(_ duration: Duration, precise: Bool = false) -> String {
        let seconds = seconds(duration)
        if seconds < 1 && precise { return "\(Int((seconds * 1000).rounded())) ms" }
        if precise || seconds.rounded() != seconds { return "\((seconds * 10).rounded() / 10) s" }
        return "\(Int(seconds)) s"
    }
}

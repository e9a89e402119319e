import Synchronization

/// Counts, limits and drains the gateway's requests: admission per (deployment, entry point),
/// in-flight counts per backend, and suspend/resume per scope with WildFly's two phases.
///
/// Built once from a ``RequestControlConfiguration``: every counter exists up front and the
/// request path (``ControlPoint``, ``BackendCounter``) is lock-free. Suspend and resume are the
/// slow path; they use mutexes and tasks, never polling.
public final class RequestController: Sendable {
    private struct DeploymentControl: Sendable {
        let name: String
        let limit: Int?
        let scope: ScopeControl
        let entryPoints: [(limit: Int?, point: ControlPoint, scope: ScopeControl)]
        let backends: [(counter: BackendCounter, scope: ScopeControl)]
    }

    private struct Registration: Sendable {
        let group: Int
        let order: Int
        let activity: any SuspendableActivity
    }

    private let globalLimit: Int?
    private let gatewayScope: ScopeControl
    private let deployments: [DeploymentControl]
    private let scopes: [SuspendScope: ScopeControl]
    private let points: [SuspendScope: ControlPoint]
    private let backends: [SuspendScope: BackendCounter]
    private let activities: Mutex<[Registration]>
    private let relay: StateChangeRelay
    private let preSuspendTimeout: Duration

    /// - Parameters:
    ///   - preSuspendTimeout: how long the pre-suspend activities of one suspend may take in
    ///     total; an activity that hangs must not block the drain for ever (WildFly has no bound).
    ///   - onStateChange: see ``onStateChange``.
    ///
    /// A deployment, entry point or backend named twice is counted once (the first wins).
    public init(
        configuration: RequestControlConfiguration,
        preSuspendTimeout: Duration = .seconds(1),
        onStateChange: (@Sendable (SuspendScope, SuspendState) -> Void)? = nil
    ) {
        let relay = StateChangeRelay(onStateChange)
        let global = AdmissionCounter(limit: configuration.globalLimit)
        let gatewayScope = ScopeControl(scope: .gateway, counter: global, relay: relay)
        var scopes: [SuspendScope: ScopeControl] = [.gateway: gatewayScope]
        var points: [SuspendScope: ControlPoint] = [:]
        var backends: [SuspendScope: BackendCounter] = [:]
        var deployments: [DeploymentControl] = []

        for deployment in configuration.deployments {
            let deploymentScope = SuspendScope.deployment(deployment.name)
            guard scopes[deploymentScope] == nil else { continue }
            let deploymentCounter = AdmissionCounter(limit: deployment.limit)
            let deploymentControl = ScopeControl(scope: deploymentScope, counter: deploymentCounter, relay: relay)
            scopes[deploymentScope] = deploymentControl

            var entryPoints: [(limit: Int?, point: ControlPoint, scope: ScopeControl)] = []
            for entryPoint in deployment.entryPoints {
                let scope = SuspendScope.entryPoint(deployment: deployment.name, entryPoint: entryPoint.name)
                guard scopes[scope] == nil else { continue }
                let counter = AdmissionCounter(limit: entryPoint.limit)
                let point = ControlPoint(
                    deployment: deployment.name, entryPoint: entryPoint.name,
                    global: global, deploymentCounter: deploymentCounter, counter: counter)
                let control = ScopeControl(scope: scope, counter: counter, relay: relay)
                scopes[scope] = control
                points[scope] = point
                entryPoints.append((entryPoint.limit, point, control))
            }

            var backendControls: [(counter: BackendCounter, scope: ScopeControl)] = []
            for address in deployment.backends {
                let scope = SuspendScope.backend(deployment: deployment.name, address: address)
                guard scopes[scope] == nil else { continue }
                let backend = BackendCounter(deployment: deployment.name, address: address)
                let control = ScopeControl(scope: scope, counter: backend.counter, relay: relay)
                scopes[scope] = control
                backends[scope] = backend
                backendControls.append((backend, control))
            }

            deployments.append(DeploymentControl(
                name: deployment.name, limit: deployment.limit, scope: deploymentControl,
                entryPoints: entryPoints, backends: backendControls))
        }

        self.globalLimit = configuration.globalLimit
        self.gatewayScope = gatewayScope
        self.deployments = deployments
        self.scopes = scopes
        self.points = points
        self.backends = backends
        self.activities = Mutex([])
        self.relay = relay
        self.preSuspendTimeout = preSuspendTimeout
    }

    /// Called once for every state change of every scope, in the order the changes happen,
    /// so the gateway can log them (RequestControl has no logger of its own). Set it in `init`
    /// or here. It runs synchronously while the scope's state changes: keep it short and do not
    /// call `suspend`/`resume` from it (reading `state(of:)` is fine).
    public var onStateChange: (@Sendable (SuspendScope, SuspendState) -> Void)? {
        get { relay.current }
        set { relay.current = newValue }
    }

    // MARK: Lookup

    /// The admission point of an entry point; nil if the configuration has no such entry point.
    /// Look it up once and keep it: this is a dictionary lookup.
    public func controlPoint(deployment: String, entryPoint: String) -> ControlPoint? {
        points[.entryPoint(deployment: deployment, entryPoint: entryPoint)]
    }

    /// The counter of a backend address; nil if the deployment has no such backend.
    public func backend(deployment: String, address: String) -> BackendCounter? {
        backends[.backend(deployment: deployment, address: address)]
    }

    private func control(for scope: SuspendScope) throws(RequestControlError) -> ScopeControl {
        guard let control = scopes[scope] else { throw .unknownScope(scope) }
        return control
    }

    // MARK: Activities

    /// Adds an activity to every suspend and resume. Lower groups suspend first and resume
    /// last (e.g. readiness in group 0 flips before listeners in group 1 stop); activities of
    /// one group run concurrently.
    public func register(_ activity: any SuspendableActivity, group: Int) {
        activities.withLock { registrations in
            registrations.append(Registration(group: group, order: registrations.count, activity: activity))
        }
    }

    /// Registered activities by group, ascending.
    private func activityGroups() -> [[any SuspendableActivity]] {
        let registrations = activities.withLock { $0 }
        var groups: [Int: [any SuspendableActivity]] = [:]
        for registration in registrations.sorted(by: { ($0.group, $0.order) < ($1.group, $1.order) }) {
            groups[registration.group, default: []].append(registration.activity)
        }
        return groups.keys.sorted().map { groups[$0]! }
    }

    /// Runs `call` on every activity, group after group, each group concurrently.
    private static func run(
        _ groups: [[any SuspendableActivity]],
        _ call: @escaping @Sendable (any SuspendableActivity) async -> Void
    ) async {
        for group in groups {
            await withTaskGroup(of: Void.self) { tasks in
                for activity in group {
                    tasks.addTask { await call(activity) }
                }
            }
        }
    }

    /// Runs `call` on the activities in an unstructured task and waits for it as `phase`, so a
    /// hanging activity costs at most `timeout` and a resume can end the wait at once.
    private static func runPhase(
        _ phase: SuspendPhase, timeout: Duration?, groups: [[any SuspendableActivity]],
        _ call: @escaping @Sendable (any SuspendableActivity) async -> Void
    ) async -> SuspendPhase.Outcome {
        guard !groups.isEmpty else {
            phase.finish(.completed)
            return await phase.wait(timeout: nil)
        }
        let work = Task {
            await run(groups, call)
            phase.finish(.completed)
        }
        let outcome = await phase.wait(timeout: timeout)
        if outcome != .completed { work.cancel() }
        return outcome
    }

    // MARK: Suspend and resume

    /// Drains a scope: PRE_SUSPEND (activities' `preSuspend`, ascending groups, bounded by the
    /// pre-suspend timeout), SUSPENDING (new requests refused, wait for those in flight up to
    /// `timeout`), then activities' `suspended` and SUSPENDED.
    ///
    /// A suspend of a scope that is already suspending or suspended does not run the
    /// activities again: it waits for the same drain with its own timeout and reports. A
    /// ``resume(_:)`` meanwhile makes it return at once with `cancelled` set. If the calling task
    /// is cancelled, the current wait ends as if it had timed out.
    public func suspend(_ scope: SuspendScope, timeout: SuspendTimeout) async throws(RequestControlError) -> SuspendResult {
        let control = try control(for: scope)
        let attempt = SuspendAttempt()
        let leads = control.enterSuspend(attempt)
        let groups = leads ? activityGroups() : []

        func cancelled() -> SuspendResult {
            SuspendResult(drained: false, active: control.counter.active, state: control.state, cancelled: true)
        }

        if leads {
            let phase = SuspendPhase()
            attempt.enter(phase)
            let outcome = await Self.runPhase(phase, timeout: preSuspendTimeout, groups: groups) {
                await $0.preSuspend(scope)
            }
            if outcome == .cancelled { return cancelled() }
            guard control.startSuspending(attempt) else { return cancelled() }
        }

        let drainPhase = SuspendPhase()
        attempt.enter(drainPhase)
        let drainOutcome: SuspendPhase.Outcome
        switch timeout {
        case .noWait:
            drainOutcome = control.counter.isDrained ? .completed : .timedOut
        case .after(let duration):
            control.counter.notifyWhenDrained(drainPhase)
            drainOutcome = await drainPhase.wait(timeout: max(duration, .zero))
            control.counter.forget(drainPhase)
        case .forever:
            control.counter.notifyWhenDrained(drainPhase)
            drainOutcome = await drainPhase.wait(timeout: nil)
            control.counter.forget(drainPhase)
        }
        if drainOutcome == .cancelled { return cancelled() }
        // The answer describes the drain itself: what the `suspended` activities do next (close
        // upgraded tunnels, say) must not turn a timed-out drain into a reported success.
        let drained = drainOutcome == .completed || control.counter.isDrained
        let activeAtEnd = control.counter.active

        if leads {
            let phase = SuspendPhase()
            attempt.enter(phase)
            let outcome = await Self.runPhase(phase, timeout: nil, groups: groups) { await $0.suspended(scope) }
            if outcome == .cancelled { return cancelled() }
            guard control.finishSuspend(attempt) else { return cancelled() }
        } else {
            guard control.leave(attempt) else { return cancelled() }
        }

        return SuspendResult(drained: drained, active: activeAtEnd, state: control.state, cancelled: false)
    }

    /// Returns a scope to RUNNING from any state: clears its paused bit (backends: back in
    /// rotation), cancels a suspend in progress (it returns at once with `cancelled`), then
    /// calls the activities' `resume` in descending group order. The state is RUNNING before
    /// the activities run, so admission restarts at once. Resuming a RUNNING scope changes
    /// nothing and calls no activity.
    ///
    /// Returns the state of the scope when the call returned, like ``SuspendResult/state``:
    /// RUNNING, unless a new suspend started meanwhile.
    @discardableResult
    public func resume(_ scope: SuspendScope) async throws(RequestControlError) -> SuspendState {
        let control = try control(for: scope)
        let previous = control.resume()
        if previous != .running {
            await Self.run(activityGroups().reversed()) { await $0.resume(scope) }
        }
        return control.state
    }

    /// The current state of a scope. Lock-free.
    public func state(of scope: SuspendScope) throws(RequestControlError) -> SuspendState {
        try control(for: scope).state
    }

    // MARK: Snapshot

    /// Every counter, for the admin API and metrics. Not an atomic cut under load (see
    /// ``RequestControlSnapshot``).
    public func snapshot() -> RequestControlSnapshot {
        var rejected = Dictionary(uniqueKeysWithValues: RejectionReason.allCases.map { ($0, 0) })
        var total = 0
        let deploymentSnapshots = deployments.map { deployment -> DeploymentSnapshot in
            let entryPoints = deployment.entryPoints.map { entry -> EntryPointSnapshot in
                let status = entry.point.statusClassCounts
                let rejections = entry.point.rejectionCounts
                for (reason, count) in rejections { rejected[reason, default: 0] += count }
                let active = entry.point.active
                return EntryPointSnapshot(
                    name: entry.point.entryPoint, state: entry.scope.state, active: active,
                    total: status.sum + active, limit: entry.limit, rejected: rejections,
                    status: status, latency: entry.point.latency.summary())
            }
            let backends = deployment.backends.map { backend in
                BackendSnapshot(
                    address: backend.counter.address, state: backend.scope.state,
                    inRotation: backend.counter.inRotation, active: backend.counter.active,
                    total: backend.counter.total, failures: backend.counter.failures)
            }
            let deploymentTotal = entryPoints.reduce(0) { $0 + $1.total }
            total += deploymentTotal
            return DeploymentSnapshot(
                name: deployment.name, state: deployment.scope.state, active: deployment.scope.counter.active,
                total: deploymentTotal, limit: deployment.limit, backends: backends, entryPoints: entryPoints)
        }
        return RequestControlSnapshot(
            state: gatewayScope.state, active: gatewayScope.counter.active, limit: globalLimit,
            total: total, rejected: rejected, deployments: deploymentSnapshots)
    }
}

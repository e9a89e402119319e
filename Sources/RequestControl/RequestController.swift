import Synchronization

/// Counts, limits and drains the gateway's requests: admission per (deployment, entry point),
/// in-flight counts per backend, and suspend/resume per scope with WildFly's two phases.
///
/// Counts the scopes of a ``RequestControlConfiguration``, which ``reconcile(_:)`` can replace
/// at run time (supervised instances come and go, a reload changes deployments and limits)
/// without losing the counters of the scopes that stay. The request path (``ControlPoint``,
/// ``BackendCounter``) is lock-free and never sees the membership: it works on the objects the
/// gateway looked up once. Lookups, snapshots, reconcile, suspend and resume are the slow path;
/// they use mutexes and tasks, never polling.
public final class RequestController: Sendable {
    private struct Registration: Sendable {
        let group: Int
        let order: Int
        let activity: any SuspendableActivity
    }

    private let gatewayScope: ScopeControl
    /// Membership and configured limits. A mutex rather than atomics: it is only read on the
    /// slow path, and a reconcile must replace the dictionaries, the order and the limits as one
    /// step so no lookup or snapshot sees half a configuration.
    private let registry: Mutex<ScopeRegistry>
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
        let gatewayScope = ScopeControl(scope: .gateway, counter: AdmissionCounter(limit: nil), relay: relay)
        self.gatewayScope = gatewayScope
        self.registry = Mutex(ScopeRegistry(gateway: gatewayScope))
        self.activities = Mutex([])
        self.relay = relay
        self.preSuspendTimeout = preSuspendTimeout
        // One construction path: a new controller is an empty one reconciled to its first
        // configuration.
        reconcile(configuration)
    }

    /// Makes the controller count `configuration` from now on, keeping every counter, state and
    /// statistic of the scopes that stay.
    ///
    /// - A deployment, entry point or backend named before and after is the same object
    ///   afterwards: a ``ControlPoint`` or ``BackendCounter`` the gateway holds stays the live
    ///   one, with its counts, statistics and suspend state (a suspend in progress goes on).
    /// - A new scope starts RUNNING. Under a suspended gateway (or deployment) its requests are
    ///   still refused, because admission checks every level.
    /// - A removed scope disappears from lookups, ``state(of:)``, suspend/resume (which throw
    ///   ``RequestControlError/unknownScope(_:)``) and snapshots, with its suspend state.
    ///   Removal is not a drain: objects already handed out keep admitting and completing (and
    ///   still count into the gateway's counter), and a suspend already waiting on a removed
    ///   scope still ends when its count drains or its timeout expires. Suspend a scope first
    ///   if its requests must have finished before it goes. Name it again later and it comes
    ///   back as a new, RUNNING scope with fresh counters.
    /// - Limits change in place. A limit lowered below the current count refuses new requests
    ///   until enough complete; nothing in flight is cut.
    /// - Snapshots list deployments, entry points and backends in the new order. The gateway's
    ///   `total` and `rejected` keep what removed entry points had counted, so they never go
    ///   backwards.
    ///
    /// Safe to call at any time from any task, concurrently with requests, lookups, snapshots,
    /// suspend and resume; reconciles are serialised. A name given twice is counted once (the
    /// first wins).
    public func reconcile(_ configuration: RequestControlConfiguration) {
        let relay = self.relay
        registry.withLock { $0.reconcile(configuration, relay: relay) }
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
    /// Look it up once and keep it: this is a dictionary lookup under the registry's mutex.
    /// The same object comes back until a reconcile removes the entry point.
    public func controlPoint(deployment: String, entryPoint: String) -> ControlPoint? {
        let scope = SuspendScope.entryPoint(deployment: deployment, entryPoint: entryPoint)
        return registry.withLock { $0.points[scope] }
    }

    /// The counter of a backend address; nil if the deployment has no such backend. The same
    /// object comes back until a reconcile removes the backend.
    public func backend(deployment: String, address: String) -> BackendCounter? {
        let scope = SuspendScope.backend(deployment: deployment, address: address)
        return registry.withLock { $0.backends[scope] }
    }

    /// The scope's control as the registry holds it now. Suspend and resume keep the object
    /// they got, so a reconcile that removes the scope meanwhile does not disturb them.
    private func control(for scope: SuspendScope) throws(RequestControlError) -> ScopeControl {
        guard let control = registry.withLock({ $0.scopes[scope] }) else { throw .unknownScope(scope) }
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

    /// The current state of a scope. Takes the registry's mutex for the lookup only; the state
    /// itself is read lock-free.
    public func state(of scope: SuspendScope) throws(RequestControlError) -> SuspendState {
        try control(for: scope).state
    }

    // MARK: Snapshot

    /// Every counter, for the admin API and metrics. Not an atomic cut under load (see
    /// ``RequestControlSnapshot``), but always of one configuration: the membership is copied
    /// under the registry's mutex, the counters are then read without it.
    public func snapshot() -> RequestControlSnapshot {
        let (globalLimit, deployments, retired) = registry.withLock {
            ($0.globalLimit, $0.deployments, $0.retired)
        }
        var rejected = Dictionary(uniqueKeysWithValues: RejectionReason.allCases.map { ($0, 0) })
        rejected.merge(retired.rejected, uniquingKeysWith: +)
        var total = retired.total
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
                    total: backend.counter.total, failures: backend.counter.failures,
                    ejected: backend.counter.isEjected, ejections: backend.counter.ejections)
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

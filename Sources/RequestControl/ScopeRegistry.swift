/// The controller's membership: the deployments, entry points and backends it counts now, with
/// their configured limits, in configuration order.
///
/// A plain value kept behind the controller's mutex. The request path never reads it (a
/// listener keeps the ``ControlPoint`` it looked up, the load balancer its ``BackendCounter``s),
/// so it can be replaced under live traffic; only lookups, snapshots and suspend/resume read it.
struct ScopeRegistry: Sendable {
    struct EntryPointControl: Sendable {
        /// As configured (nil = unlimited), for snapshots: the counter only keeps the encoding.
        var limit: Int?
        let point: ControlPoint
        let scope: ScopeControl
    }

    struct BackendControl: Sendable {
        let counter: BackendCounter
        let scope: ScopeControl
    }

    struct DeploymentControl: Sendable {
        let name: String
        var limit: Int?
        let scope: ScopeControl
        var entryPoints: [EntryPointControl]
        var backends: [BackendControl]
    }

    /// What the entry points removed so far had counted when they were removed.
    ///
    /// The gateway-wide `total` and `rejected` of a snapshot are sums over entry points; without
    /// this a reload that drops an entry point would make them go backwards, which Prometheus
    /// reads as a counter reset (and `rate()` as a burst of the whole remaining count).
    struct Retired: Sendable {
        var total = 0
        var rejected: [RejectionReason: Int] = [:]
    }

    /// The gateway scope; never removed, and its counter is the `global` of every control point.
    let gateway: ScopeControl
    private(set) var globalLimit: Int?
    private(set) var deployments: [DeploymentControl] = []
    private(set) var scopes: [SuspendScope: ScopeControl]
    private(set) var points: [SuspendScope: ControlPoint] = [:]
    private(set) var backends: [SuspendScope: BackendCounter] = [:]
    private(set) var retired = Retired()

    /// A registry with only the gateway scope (unlimited) in it.
    init(gateway: ScopeControl) {
        self.gateway = gateway
        self.scopes = [.gateway: gateway]
    }

    /// Becomes the registry of `configuration`.
    ///
    /// A scope named before and after keeps its objects, so its counts, statistics, suspend
    /// state and the references already handed out stay valid; only its limit is stored anew.
    /// A new scope gets new, RUNNING objects. A scope no longer named is dropped from the
    /// registry; objects already handed out keep working on their own counters. A name given
    /// twice is counted once, the first wins (as it always was).
    ///
    /// An entry point is kept only under its kept deployment (the key holds the deployment's
    /// name), so a kept ``ControlPoint`` always still counts into its deployment's live counter.
    mutating func reconcile(_ configuration: RequestControlConfiguration, relay: StateChangeRelay) {
        let global = gateway.counter
        global.setLimit(configuration.globalLimit)

        var scopes: [SuspendScope: ScopeControl] = [.gateway: gateway]
        var points: [SuspendScope: ControlPoint] = [:]
        var backends: [SuspendScope: BackendCounter] = [:]
        var deployments: [DeploymentControl] = []

        for deployment in configuration.deployments {
            let deploymentScope = SuspendScope.deployment(deployment.name)
            guard scopes[deploymentScope] == nil else { continue }
            let deploymentControl = self.scopes[deploymentScope]
                ?? ScopeControl(scope: deploymentScope, counter: AdmissionCounter(limit: nil), relay: relay)
            deploymentControl.counter.setLimit(deployment.limit)
            scopes[deploymentScope] = deploymentControl

            var entryPoints: [EntryPointControl] = []
            for entryPoint in deployment.entryPoints {
                let scope = SuspendScope.entryPoint(deployment: deployment.name, entryPoint: entryPoint.name)
                guard scopes[scope] == nil else { continue }
                let point: ControlPoint
                let control: ScopeControl
                if let keptPoint = self.points[scope], let keptControl = self.scopes[scope] {
                    assert(keptPoint.deploymentCounter === deploymentControl.counter)
                    point = keptPoint
                    control = keptControl
                } else {
                    let counter = AdmissionCounter(limit: nil)
                    point = ControlPoint(
                        deployment: deployment.name, entryPoint: entryPoint.name,
                        global: global, deploymentCounter: deploymentControl.counter, counter: counter)
                    control = ScopeControl(scope: scope, counter: counter, relay: relay)
                }
                control.counter.setLimit(entryPoint.limit)
                scopes[scope] = control
                points[scope] = point
                entryPoints.append(EntryPointControl(limit: entryPoint.limit, point: point, scope: control))
            }

            var backendControls: [BackendControl] = []
            for address in deployment.backends {
                let scope = SuspendScope.backend(deployment: deployment.name, address: address)
                guard scopes[scope] == nil else { continue }
                let backend: BackendCounter
                let control: ScopeControl
                if let keptBackend = self.backends[scope], let keptControl = self.scopes[scope] {
                    backend = keptBackend
                    control = keptControl
                } else {
                    backend = BackendCounter(deployment: deployment.name, address: address)
                    control = ScopeControl(scope: scope, counter: backend.counter, relay: relay)
                }
                scopes[scope] = control
                backends[scope] = backend
                backendControls.append(BackendControl(counter: backend, scope: control))
            }

            deployments.append(DeploymentControl(
                name: deployment.name, limit: deployment.limit, scope: deploymentControl,
                entryPoints: entryPoints, backends: backendControls))
        }

        for deployment in self.deployments {
            for entry in deployment.entryPoints {
                let scope = SuspendScope.entryPoint(deployment: entry.point.deployment, entryPoint: entry.point.entryPoint)
                if points[scope] == nil { retire(entry.point) }
            }
        }

        self.globalLimit = configuration.globalLimit
        self.deployments = deployments
        self.scopes = scopes
        self.points = points
        self.backends = backends
    }

    /// Adds what a removed entry point counted to `retired`. Requests admitted through it after
    /// this (a listener that still holds it) are not added: the price of not keeping every
    /// removed point for ever.
    private mutating func retire(_ point: ControlPoint) {
        retired.total += point.statusClassCounts.sum + point.active
        for (reason, count) in point.rejectionCounts {
            retired.rejected[reason, default: 0] += count
        }
    }
}

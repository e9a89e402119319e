import RequestControl

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Maps a request (host, path, method) to a deployment and one of its entry points.
///
/// Immutable: a change of configuration or of the backends in rotation builds a new one, of which
/// every event loop swaps in a replica of its own (`replicatedForLoop`), so the request path reads
/// it without locks and touches no object another loop touches but the shared counters.
/// Deployments are chosen by host, then by the longest path prefix; a deployment that names
/// the request's host wins over an any-host deployment with the same prefix length. Inside the
/// deployment the entry point with the longest matching prefix whose method list allows the
/// request wins.
struct Router: Sendable {
    struct Route: Sendable {
        let deployment: DeploymentRoute
        let controlPoint: ControlPoint
    }

    final class DeploymentRoute: Sendable {
        let name: String
        let hosts: Set<String>?
        let pathPrefix: String
        let entryPoints: [EntryPointRoute]
        let balancer: LoadBalancer
        let failover: Failover

        init(
            name: String, hosts: Set<String>?, pathPrefix: String, entryPoints: [EntryPointRoute], balancer: LoadBalancer,
            failover: Failover = Failover()
        ) {
            self.name = name
            self.hosts = hosts
            self.pathPrefix = pathPrefix
            // Longest prefix first, so the first match is the best one.
            self.entryPoints = entryPoints.sorted { $0.pathPrefix.utf8.count > $1.pathPrefix.utf8.count }
            self.balancer = balancer
            self.failover = failover
        }
    }

    /// What a deployment does when a backend fails: retries elsewhere (within a budget) and
    /// passive ejection of its fixed backends.
    struct Failover: Sendable {
        var retries = GatewayConfig.defaultRetries
        var ejectAfter = GatewayConfig.defaultEjectAfter
        var ejectFor = GatewayConfig.defaultEjectFor
        /// The configured addresses; supervised instances have active health checks instead.
        var fixedBackends: Set<HostPort> = []
        /// A retry holds a slot of the budget of the route it started on until its attempt ends
        /// (a router published meanwhile has a budget of its own).
        var budget = RetryBudget()
    }

    struct EntryPointRoute: Sendable {
        let name: String
        let pathPrefix: String
        let methods: Set<String>?
        let controlPoint: ControlPoint
    }

    /// Longest prefix first; among equal prefixes host-specific deployments first.
    private let deployments: [DeploymentRoute]
    /// Whether any deployment is chosen by host; if none is, the Host header is never parsed.
    let usesHosts: Bool

    init(deployments: [DeploymentRoute]) {
        self.usesHosts = deployments.contains { $0.hosts != nil }
        self.deployments = deployments.sorted { a, b in
            let la = a.pathPrefix.utf8.count, lb = b.pathPrefix.utf8.count
            if la != lb { return la > lb }
            return a.hosts != nil && b.hosts == nil
        }
    }

    /// Builds the routes of a configuration on top of the controller that counts them.
    ///
    /// - Parameter backends: the addresses in rotation per deployment (the configured ones, and
    ///   the supervised instances that are ready); every one must be counted by `controller`.
    /// - Parameter weights: per deployment, the weights of backends that have one (registered
    ///   backends); every other backend weighs 1.
    init(config: GatewayConfig, controller: RequestController, backends: [String: [HostPort]], weights: [String: [HostPort: Int]] = [:]) {
        var routes: [DeploymentRoute] = []
        for deployment in config.deployments {
            let entryPoints = deployment.entryPoints.compactMap { ep -> EntryPointRoute? in
                guard let point = controller.controlPoint(deployment: deployment.name, entryPoint: ep.name) else { return nil }
                return EntryPointRoute(name: ep.name, pathPrefix: ep.pathPrefix, methods: ep.methods.map(Set.init), controlPoint: point)
            }
            let members = (backends[deployment.name] ?? []).compactMap { address -> (HostPort, BackendCounter)? in
                controller.backend(deployment: deployment.name, address: address.description).map { (address, $0) }
            }
            routes.append(
                DeploymentRoute(
                    name: deployment.name,
                    hosts: deployment.hosts.map(Set.init),
                    pathPrefix: deployment.pathPrefix,
                    entryPoints: entryPoints,
                    balancer: LoadBalancer(backends: members, weights: weights[deployment.name] ?? [:]),
                    failover: Failover(
                        retries: deployment.retries, ejectAfter: deployment.ejectAfter, ejectFor: deployment.ejectFor,
                        fixedBackends: Set(deployment.backends))
                )
            )
        }
        self.init(deployments: routes)
    }

    /// This router for one event loop: its own deployment objects and balancers (so the
    /// round-robin cursor and the reference counts the request path touches stay on one core),
    /// on the same backends, entry points and retry budgets (a budget bounds a deployment's
    /// retries across all loops).
    func replicatedForLoop() -> Router {
        Router(
            deployments: deployments.map {
                DeploymentRoute(
                    name: $0.name, hosts: $0.hosts, pathPrefix: $0.pathPrefix, entryPoints: $0.entryPoints,
                    balancer: LoadBalancer(backends: $0.balancer.backends), failover: $0.failover)
            })
    }

    /// The routes of a configuration whose backends are all fixed addresses.
    init(config: GatewayConfig, controller: RequestController) {
        self.init(
            config: config, controller: controller,
            backends: Dictionary(uniqueKeysWithValues: config.deployments.map { ($0.name, $0.backends) }))
    }

    /// Whether `address` still serves `deployment` in this router (an ejected backend's probes
    /// stop when a reload removed it).
    func routes(deployment name: String, to address: HostPort) -> Bool {
        deployments.contains { $0.name == name && $0.balancer.backends.contains { $0.address == address } }
    }

    /// The same choice on the bytes of the request target and method, as the HTTP/1.1 path has
    /// them: no String is made unless an entry point restricts methods.
    func route(host: String?, path: UnsafeRawBufferPointer, method: Slice<UnsafeRawBufferPointer>) -> Route? {
        for deployment in deployments {
            if let hosts = deployment.hosts {
                guard let host, hosts.contains(host) else { continue }
            }
            guard Self.hasPrefix(path, deployment.pathPrefix) else { continue }
            for ep in deployment.entryPoints where Self.hasPrefix(path, ep.pathPrefix) {
                if let methods = ep.methods, !methods.contains(String(decoding: method, as: UTF8.self)) { continue }
                return Route(deployment: deployment, controlPoint: ep.controlPoint)
            }
        }
        return nil
    }

    private static func hasPrefix(_ bytes: UnsafeRawBufferPointer, _ prefix: String) -> Bool {
        var prefix = prefix
        return prefix.withUTF8 { expected in
            expected.count <= bytes.count && memcmp(bytes.baseAddress!, expected.baseAddress!, expected.count) == 0
        }
    }

    /// - Parameters:
    ///   - host: the request's host without port, lower-cased; `nil` when the request had none.
    ///   - path: the request target's path (query string allowed, it never matches a prefix end).
    func route(host: String?, path: Substring, method: String) -> Route? {
        for deployment in deployments {
            if let hosts = deployment.hosts {
                guard let host, hosts.contains(host) else { continue }
            }
            guard path.hasPrefix(deployment.pathPrefix) else { continue }
            for ep in deployment.entryPoints where path.hasPrefix(ep.pathPrefix) {
                if let methods = ep.methods, !methods.contains(method) { continue }
                return Route(deployment: deployment, controlPoint: ep.controlPoint)
            }
        }
        return nil
    }
}

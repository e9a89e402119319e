import Logging
import RequestControl

/// Which backends are in rotation, per deployment: the configured addresses, plus the supervised
/// instances that passed their first health check.
///
/// Every change is published the same way: RequestControl is reconciled (new counters for new
/// addresses, the counters of the others kept), a new immutable `Router` is built, and every
/// event loop swaps it in. Requests already routed keep the backend they hold.
actor BackendMembership {
    private(set) var config: GatewayConfig
    private let controller: RequestController
    private let server: ProxyServer
    private let logger: Logger
    /// Ready supervised instances, in the order they joined.
    private var instances: [String: [HostPort]] = [:]
    /// Backends registered in etcd that are serving and passed their check, per deployment.
    private var registered: [String: [HostPort]] = [:]
    /// Their weights, where not 1.
    private var registeredWeights: [String: [HostPort: Int]] = [:]
    /// Numbers the published routers: publishing awaits the loops, so two publications can
    /// overlap, and a loop must never swap an older router in over a newer one.
    private var version = 0

    init(config: GatewayConfig, controller: RequestController, server: ProxyServer, logger: Logger) {
        self.config = config
        self.controller = controller
        self.server = server
        self.logger = logger
    }

    /// The controller's configuration for a gateway configuration and the instances in rotation.
    static func requestControlConfiguration(_ config: GatewayConfig, instances: [String: [HostPort]] = [:]) -> RequestControlConfiguration {
        RequestControlConfiguration(
            globalLimit: config.limits.maxRequests,
            deployments: config.deployments.map { d in
                .init(
                    name: d.name,
                    limit: d.maxRequests,
                    entryPoints: d.entryPoints.map { .init(name: $0.name, limit: $0.maxRequests) },
                    backends: (d.backends + (instances[d.name] ?? []).filter { !d.backends.contains($0) }).map(\.description)
                )
            }
        )
    }

    func add(deployment: String, address: HostPort) async {
        guard config.deployments.contains(where: { $0.name == deployment }) else { return }
        var list = instances[deployment] ?? []
        guard !list.contains(address) else { return }
        list.append(address)
        instances[deployment] = list
        await publish()
        // A counter left over from an earlier instance on the same port would be SUSPENDED.
        _ = try? await controller.resume(.backend(deployment: deployment, address: address.description))
    }

    /// The registered backends in rotation now, per deployment (the whole set: ones left out are
    /// taken out of rotation; requests already routed to them finish).
    func setRegistered(_ members: [String: [HostPort]], weights: [String: [HostPort: Int]] = [:]) async {
        let names = Set(config.deployments.map(\.name))
        let kept = members.filter { names.contains($0.key) && !$0.value.isEmpty }
        let keptWeights = weights.filter { names.contains($0.key) && !$0.value.isEmpty }
        guard kept != registered || keptWeights != registeredWeights else { return }
        let joined = kept.flatMap { name, list in list.filter { !(registered[name] ?? []).contains($0) }.map { (name, $0) } }
        registered = kept
        registeredWeights = keptWeights
        await publish()
        for (deployment, address) in joined {
            _ = try? await controller.resume(.backend(deployment: deployment, address: address.description))
        }
    }

    /// Supervised instances and registered backends, per deployment, without duplicates.
    private var added: [String: [HostPort]] {
        var all = instances
        for (name, list) in registered {
            var merged = all[name] ?? []
            for address in list where !merged.contains(address) { merged.append(address) }
            all[name] = merged
        }
        return all
    }

    func remove(deployment: String, address: HostPort) async {
        guard var list = instances[deployment], list.contains(address) else { return }
        list.removeAll { $0 == address }
        instances[deployment] = list
        await publish()
    }

    /// A new configuration (reload): limits, timeouts, routes and fixed backends change in place.
    /// Supervised instances of deployments that are gone are forgotten.
    func apply(_ newConfig: GatewayConfig) async {
        config = newConfig
        let names = Set(newConfig.deployments.map(\.name))
        instances = instances.filter { names.contains($0.key) }
        registered = registered.filter { names.contains($0.key) }
        await publish()
    }

    private func publish() async {
        let added = self.added
        controller.reconcile(Self.requestControlConfiguration(config, instances: added))
        var backends: [String: [HostPort]] = [:]
        for deployment in config.deployments {
            backends[deployment.name] = deployment.backends + (added[deployment.name] ?? []).filter { !deployment.backends.contains($0) }
        }
        let router = Router(config: config, controller: controller, backends: backends, weights: registeredWeights)
        let timeouts = config.timeouts
        let limits = config.limits
        let http2 = config.http2
        let upgradeProtocols = config.upgradeProtocols
        version += 1
        let version = self.version
        await server.forEachLoop { loop in
            guard version > loop.routerVersion else { return }
            loop.routerVersion = version
            loop.router = router.replicatedForLoop()
            loop.timeouts = timeouts
            loop.limits = limits
            loop.http2 = http2
            loop.upgradeProtocols = upgradeProtocols
        }
    }
}

import Keeper
import Logging
import RequestControl
import Supervisor

/// The gateway's side of the supervisor: a ready instance joins the rotation, a gone one leaves
/// it, and every planned stop is first a drain through RequestControl (preSuspend takes the
/// instance out of rotation and closes its idle upstream connections; suspend waits for its
/// requests in flight).
struct SupervisedBackends: SupervisorDelegate {
    let membership: BackendMembership
    let controller: RequestController
    let prober: HealthProber
    let server: ProxyServer
    let logger: Logger
    /// The keeper keeps each instance's last state for the next worker's log.
    var keeper: WorkerLink? = nil
    /// Registers the instances of deployments with `publish: true` in etcd.
    var publisher: InstancePublisher? = nil

    private func publishes(_ deployment: String) async -> Bool {
        guard publisher != nil else { return false }
        return await membership.config.deployments.first { $0.name == deployment }?.publish ?? false
    }

    func instanceReady(_ instance: InstanceEndpoint) async {
        await membership.add(deployment: instance.deployment, address: Self.address(instance))
        keeper?.reportState(pid: instance.pid, state: "READY")
        logger.info("backend joined the rotation", metadata: ["instance": "\(instance.name)", "backend": "\(instance.address)"])
        if await publishes(instance.deployment) {
            await publisher?.publish(deployment: instance.deployment, address: Self.address(instance))
        }
    }

    func instanceGone(_ instance: InstanceEndpoint) async {
        let address = Self.address(instance)
        await membership.remove(deployment: instance.deployment, address: address)
        await server.forEachLoop { $0.pool.closeIdle(backend: address) }
        logger.info("backend left the rotation", metadata: ["instance": "\(instance.name)", "backend": "\(instance.address)"])
        await publisher?.remove(deployment: instance.deployment, address: address)
    }

    func drain(_ instance: InstanceEndpoint, timeout: Duration) async -> DrainReport {
        keeper?.reportState(pid: instance.pid, state: "STOPPING")
        let clock = ContinuousClock()
        let started = clock.now
        let address = Self.address(instance)
        // Published: the other hosts' gateways let go first, while this one still serves it.
        // Half the drain's time at most, so this gateway's own drain keeps the other half.
        await publisher?.withdraw(deployment: instance.deployment, address: address, timeout: timeout / 2)
        let remaining = max(timeout - (clock.now - started), timeout / 2)
        let scope = SuspendScope.backend(deployment: instance.deployment, address: address.description)
        // Tunnels (WebSocket) never end by themselves: after the deployment's tunnel_grace they
        // are closed with 1001, their clients reconnect to another instance, and the drain goes
        // on without them instead of holding the roll for the whole drain timeout.
        let grace = await membership.config.deployments.first { $0.name == instance.deployment }?.tunnelGrace
            ?? GatewayConfig.defaultTunnelGrace
        let server = self.server
        let logger = self.logger
        let closer = Task {
            try await Task.sleep(for: grace)
            let counts = await server.mapLoops { $0.closeTunnels(backend: address) }
            let closed = counts.reduce(0, +)
            if closed > 0 {
                logger.info(
                    "tunnels closed for a planned stop",
                    metadata: ["instance": "\(instance.name)", "backend": "\(address)", "tunnels": "\(closed)", "tunnel_grace": "\(grace)"])
            }
        }
        defer { closer.cancel() }
        do {
            let result = try await controller.suspend(scope, timeout: .after(remaining))
            return DrainReport(drained: result.drained, active: result.active, duration: clock.now - started)
        } catch {
            // Not counted (never joined the rotation): nothing can be in flight to it.
            return DrainReport(drained: true, active: 0, duration: clock.now - started)
        }
    }

    func probe(_ instance: InstanceEndpoint, check: HealthCheckSpec) async -> HealthProbeResult {
        await prober.probe(instance, check: check)
    }

    static func address(_ instance: InstanceEndpoint) -> HostPort {
        HostPort(host: instance.host, port: instance.port)
    }
}

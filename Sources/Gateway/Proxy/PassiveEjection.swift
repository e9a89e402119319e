import Logging
import NIOCore
import NIOPosix
import RequestControl

/// Passive health for fixed backends: one that fails `eject_after` requests in a row (refused,
/// reset, broken, timed out) leaves the load balancer's choice for `eject_for`; then a TCP probe
/// decides. A passing probe lets it back; a failing one doubles the wait (up to a minute). A
/// client request never lets it back, so no client is spent finding out that it is still down.
///
/// The last backend a deployment can choose is never ejected: with nothing left, every request
/// would fail at once (nginx's "no live upstreams"), where a backend that comes back a moment
/// later would have answered them.
///
/// Supervised instances are left to their own health checks. The failure counts and the ejected
/// flag live in RequestControl's backend counters (lock-free, read by the balancer); this type
/// decides and runs the probes.
final class PassiveEjection: Sendable {
    /// The longest wait between two probes of an ejected backend.
    static let maxEjection: Duration = .seconds(60)

    private let group: EventLoopGroup
    private let probeTimeout: TimeAmount
    private let logger: Logger

    init(group: EventLoopGroup, probeTimeout: TimeAmount, logger: Logger) {
        self.group = group
        self.probeTimeout = probeTimeout
        self.logger = logger
    }

    /// A request to `backend` of `deployment` failed; called on `loop`'s event loop.
    func backendFailed(_ backend: LoadBalancer.Backend, deployment: Router.DeploymentRoute, loop: LoopContext) {
        let failover = deployment.failover
        let counter = backend.counter
        guard failover.ejectAfter > 0, counter.failuresInARow >= failover.ejectAfter,
            failover.fixedBackends.contains(backend.address), !counter.isEjected,
            deployment.balancer.choosable > 1, counter.eject()
        else { return }
        logger.warning(
            "backend ejected",
            metadata: [
                "deployment": "\(deployment.name)", "backend": "\(backend.address)",
                "failures_in_a_row": "\(counter.failuresInARow)", "eject_for": "\(failover.ejectFor)",
            ])
        loop.pool.closeIdle(backend: backend.address)
        let bound = NIOLoopBound(loop, eventLoop: loop.eventLoop)
        let name = deployment.name
        let address = backend.address
        Task { [self] in
            await probeUntilBack(counter, deployment: name, address: address, first: failover.ejectFor, loop: bound)
        }
    }

    private func probeUntilBack(
        _ counter: BackendCounter, deployment: String, address: HostPort, first: Duration, loop: NIOLoopBound<LoopContext>
    ) async {
        var wait = first
        while counter.isEjected {
            try? await Task.sleep(for: wait)
            // A reload that removed the backend ends its probes (its counter goes with it).
            let routed = (try? await loop.eventLoop.submit { loop.value.router.routes(deployment: deployment, to: address) }.get()) ?? false
            guard routed else { return }
            if await probe(address) {
                counter.restore()
                logger.info("backend restored", metadata: ["deployment": "\(deployment)", "backend": "\(address)"])
                return
            }
            wait = min(wait * 2, Self.maxEjection)
            logger.info(
                "ejected backend still failing",
                metadata: ["deployment": "\(deployment)", "backend": "\(address)", "next_probe_in": "\(wait)"])
        }
    }

    /// A TCP connect within the connect timeout.
    private func probe(_ address: HostPort) async -> Bool {
        do {
            let channel = try await ClientBootstrap(group: group)
                .connectTimeout(probeTimeout)
                .connect(host: address.host, port: address.port).get()
            try? await channel.close()
            return true
        } catch {
            return false
        }
    }
}

import Foundation
import Logging
import NIOCore
import NIOPosix
import RequestControl
import ServiceLifecycle
import UnixSignals

/// The running gateway: proxy listener, admin listener and RequestControl, with the graceful
/// shutdown the design asks for (stop accepting, preSuspend, suspend within the shutdown
/// timeout, exit). Runs inside a swift-service-lifecycle `ServiceGroup`.
final class GatewayService: Service {
    let config: GatewayConfig
    let logger: Logger
    let controller: RequestController

    init(config: GatewayConfig, logger: Logger) {
        self.config = config
        self.logger = logger
        let stateLogger = logger
        self.controller = RequestController(
            configuration: Self.requestControlConfiguration(config),
            preSuspendTimeout: config.timeouts.preSuspend,
            onStateChange: { scope, state in
                stateLogger.info("suspend state changed", metadata: ["scope": "\(scope)", "state": "\(state.rawValue)"])
            }
        )
    }

    static func requestControlConfiguration(_ config: GatewayConfig) -> RequestControlConfiguration {
        RequestControlConfiguration(
            globalLimit: config.limits.maxRequests,
            deployments: config.deployments.map { d in
                .init(
                    name: d.name,
                    limit: d.maxRequests,
                    entryPoints: d.entryPoints.map { .init(name: $0.name, limit: $0.maxRequests) },
                    backends: d.backends.map(\.description)
                )
            }
        )
    }

    func run() async throws {
        let threads = config.threads ?? System.coreCount
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let router = Router(config: config, controller: controller)
        let server = try ProxyServer(group: group, config: config, router: router, logger: logger)
        controller.register(ProxyActivity(server: server, config: config), group: 0)

        let listener: Channel
        let admin: Channel
        do {
            listener = try await server.bind()
            admin = try await AdminServer.bind(
                host: config.admin.listen.host,
                port: config.admin.listen.port,
                api: AdminAPI(controller: controller, defaultSuspendTimeout: config.shutdownTimeout),
                group: group
            )
        } catch {
            try? await group.shutdownGracefully()
            throw GatewayStartError(message: "cannot listen: \(error)")
        }
        logger.info(
            "gateway listening",
            metadata: [
                "listen": "\(Self.bound(listener, config.listen))", "admin": "\(Self.bound(admin, config.admin.listen))",
                "threads": "\(threads)",
                "deployments": "\(config.deployments.map(\.name).joined(separator: ","))",
                "pid": "\(getpid())",
            ]
        )

        // Wait for SIGTERM/SIGINT (the ServiceGroup turns them into a graceful shutdown).
        try? await gracefulShutdown()

        // Trapped before anything is logged, so a second signal is never missed.
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        let secondSignal = Task {
            for await signal in signals {
                self.logger.warning("second signal during shutdown; exiting now", metadata: ["signal": "\(signal)"])
                exit(1)
            }
        }
        defer { secondSignal.cancel() }

        logger.info("shutting down: no longer accepting", metadata: ["timeout": "\(config.shutdownTimeout)"])
        try? await listener.close()
        let result = try await controller.suspend(.gateway, timeout: .after(config.shutdownTimeout))
        logger.info(
            "shutdown drain finished",
            metadata: ["drained": "\(result.drained)", "active": "\(result.active)"]
        )
        await server.forEachLoop { $0.closeAllConnections() }
        try? await admin.close()
        try? await group.shutdownGracefully()
        logger.info("gateway stopped")
    }
}

extension GatewayService {
    /// The address a listener really bound (a configured port 0 becomes the port the system chose).
    static func bound(_ channel: Channel, _ configured: HostPort) -> HostPort {
        guard let port = channel.localAddress?.port else { return configured }
        return HostPort(host: configured.host, port: port)
    }
}

struct GatewayStartError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

import Foundation
import Logging
import NIOCore
import NIOPosix
import RequestControl
import ServiceLifecycle
import Supervisor
import UnixSignals

/// The running gateway: proxy listener, admin listener and RequestControl, with the graceful
/// shutdown the design asks for (stop accepting, preSuspend, suspend within the shutdown
/// timeout, exit). Runs inside a swift-service-lifecycle `ServiceGroup`.
final class GatewayService: Service {
    let config: GatewayConfig
    let configPath: String?
    let logger: Logger
    let controller: RequestController

    init(config: GatewayConfig, configPath: String? = nil, logger: Logger) {
        self.config = config
        self.configPath = configPath
        self.logger = logger
        let stateLogger = logger
        self.controller = RequestController(
            configuration: BackendMembership.requestControlConfiguration(config),
            preSuspendTimeout: config.timeouts.preSuspend,
            onStateChange: { scope, state in
                stateLogger.info("suspend state changed", metadata: ["scope": "\(scope)", "state": "\(state.rawValue)"])
            }
        )
    }

    func run() async throws {
        // Trapped before anything else, so a reload request is never the default action (exit).
        let reloadSignals = await UnixSignalsSequence(trapping: .sighup)
        let threads = config.threads ?? System.coreCount
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let traffic = TrafficCounters(shards: threads)
        let router = Router(config: config, controller: controller)
        let server = try ProxyServer(group: group, config: config, router: router, traffic: traffic, logger: logger)
        // Certificates first: a bad one stops the start before anything listens or runs.
        let tls: TLSListenerContexts
        do {
            tls = TLSListenerContexts(try TLSListenerContexts.load(config.listeners))
        } catch {
            try? await group.shutdownGracefully()
            throw GatewayStartError(message: "\(error)")
        }
        controller.register(ProxyActivity(server: server), group: 0)
        let membership = BackendMembership(config: config, controller: controller, server: server, logger: logger)

        let executable = Self.executablePath()
        var watchdog: GroupWatchdogClient?
        if config.deployments.contains(where: { $0.process != nil }) || configPath != nil {
            do {
                watchdog = try GroupWatchdogClient.start(executable: [executable])
            } catch {
                logger.warning("no process-group watchdog; children may outlive a gateway killed with SIGKILL", metadata: ["error": "\(error)"])
            }
        }
        let spawner = ProcessSpawner(launcher: [executable, "_launch", "--"], relay: .standard(), watchdog: watchdog)
        let supervisor = ProcessSupervisor(
            spawner: spawner,
            delegate: SupervisedBackends(
                membership: membership, controller: controller, prober: HealthProber(group: group), server: server, logger: logger),
            logger: logger,
            environment: ProcessInfo.processInfo.environment
        )
        let (shutdownRequests, shutdownContinuation) = AsyncStream<Duration?>.makeStream()
        let operations = GatewayOperations(
            supervisor: supervisor, membership: membership, controller: controller, configPath: configPath,
            executablePath: executable, logger: logger, shutdownRequests: shutdownContinuation, tls: tls)

        var listeners: [Channel] = []
        let admin: Channel
        do {
            for (index, listener) in config.listeners.enumerated() {
                listeners.append(try await server.bind(listener, index: index, tls: tls))
            }
            let adminConnections = AdminConnections(maxConnections: config.admin.maxConnections, logger: logger)
            admin = try await AdminServer.bind(
                config: config.admin,
                api: AdminAPI(
                    controller: controller, defaultSuspendTimeout: config.shutdownTimeout, operations: operations, traffic: traffic,
                    tls: tls.counters, connections: adminConnections),
                connections: adminConnections,
                group: group
            )
        } catch {
            for listener in listeners { try? await listener.close() }
            try? await group.shutdownGracefully()
            throw GatewayStartError(message: "cannot listen: \(error)")
        }
        for (channel, listener) in zip(listeners, config.listeners) {
            logger.info(
                "listener ready",
                metadata: [
                    "listen": "\(Self.bound(channel, listener.listen))",
                    "protocols": "\(listener.protocols.map(\.rawValue).joined(separator: ","))",
                    "tls": "\(listener.tls != nil)",
                ]
            )
        }
        logger.info(
            "gateway listening",
            metadata: [
                "listen": "\(Self.bound(listeners[0], config.listen))", "admin": "\(Self.bound(admin, config.admin.listen))",
                "threads": "\(threads)",
                "deployments": "\(config.deployments.map(\.name).joined(separator: ","))",
                "pid": "\(getpid())",
            ]
        )
        for deployment in config.deployments {
            if let spec = deployment.process {
                await supervisor.add(deployment: deployment.name, spec: operations.resolve(spec))
            }
        }

        let reloads = Task {
            for await _ in reloadSignals {
                self.logger.info("SIGHUP: reloading the configuration")
                do {
                    _ = try await operations.reload()
                } catch {
                    self.logger.error("reload failed", metadata: ["error": "\(error)"])
                }
            }
        }
        defer { reloads.cancel() }

        // Wait for SIGTERM/SIGINT (the ServiceGroup turns them into a graceful shutdown) or for
        // POST /shutdown, whichever comes first.
        enum Cause: Sendable {
            case signal
            case request(Duration?)
        }
        let cause: Cause = await withTaskGroup(of: Cause?.self) { waits in
            waits.addTask {
                try? await gracefulShutdown()
                return .signal
            }
            waits.addTask {
                for await timeout in shutdownRequests { return .request(timeout) }
                return nil
            }
            var first: Cause = .signal
            while let next = await waits.next() {
                if let next {
                    first = next
                    break
                }
            }
            waits.cancelAll()
            return first
        }
        // A reload may have changed it.
        var shutdownTimeout = await membership.config.shutdownTimeout
        if case .request(let requested?) = cause { shutdownTimeout = requested }

        // Trapped before anything is logged, so a second signal is never missed. After a
        // shutdown by signal, the next signal means "now"; after POST /shutdown, the first
        // signal (a service manager's stop, say) is only the request again, the second one is "now".
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        let signalsBeforeExit: Int
        if case .signal = cause { signalsBeforeExit = 1 } else { signalsBeforeExit = 2 }
        let secondSignal = Task {
            var seen = 0
            for await signal in signals {
                seen += 1
                guard seen >= signalsBeforeExit else {
                    self.logger.info("signal during shutdown; already draining (another one exits at once)", metadata: ["signal": "\(signal)"])
                    continue
                }
                self.logger.warning("second signal during shutdown; exiting now", metadata: ["signal": "\(signal)"])
                exit(1)
            }
        }
        defer { secondSignal.cancel() }

        logger.info("shutting down: no longer accepting", metadata: ["timeout": "\(shutdownTimeout)"])
        for listener in listeners { try? await listener.close() }
        let result = try await controller.suspend(.gateway, timeout: .after(shutdownTimeout))
        logger.info(
            "shutdown drain finished",
            metadata: ["drained": "\(result.drained)", "active": "\(result.active)"]
        )
        await server.forEachLoop { $0.closeAllConnections() }
        // The gateway has drained: nothing is in flight to the instances any more.
        await supervisor.shutdown(drain: false)
        watchdog?.close()
        try? await admin.close()
        try? await group.shutdownGracefully()
        logger.info("gateway stopped")
    }

    /// The running binary, for the `_launch` wrapper, the watchdog and `command: [gateway, ...]`.
    static func executablePath() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return CommandLine.arguments[0] }
        return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
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

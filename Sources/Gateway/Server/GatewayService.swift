import Foundation
import Keeper
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
    /// What happened (instance states, suspends, rolls, reloads, upgrades, audit), for
    /// `/events` and the status page.
    let events = GatewayEventLog()
    /// The link to the keeper that runs this worker (`gateway run` always has one); nil when
    /// the gateway runs as a single process of its own (tests, embedding).
    let keeper: WorkerLink?

    init(config: GatewayConfig, configPath: String? = nil, logger: Logger, keeper: WorkerLink? = nil) {
        self.keeper = keeper
        self.config = config
        self.configPath = configPath
        self.logger = logger
        let stateLogger = logger
        let events = self.events
        self.controller = RequestController(
            configuration: BackendMembership.requestControlConfiguration(config),
            preSuspendTimeout: config.timeouts.preSuspend,
            onStateChange: { scope, state in
                stateLogger.info("suspend state changed", metadata: ["scope": "\(scope)", "state": "\(state.rawValue)"])
                events.publish("suspend", "\(scope): \(state.rawValue)", ["scope": .string("\(scope)"), "state": .string(state.rawValue)])
            }
        )
    }

    func run() async throws {
        // First, before anything reads the environment for a child.
        let sessionKey = AdminSessions.keyFromEnvironment()
        // Trapped before anything else, so a reload request is never the default action (exit).
        let reloadSignals = await UnixSignalsSequence(trapping: .sighup)
        let threads = config.threads ?? System.coreCount
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let traffic = TrafficCounters(shards: threads)
        let router = Router(config: config, controller: controller)
        // Opened before anything listens: a path the worker cannot write stops the start.
        let accessLog = AccessLogWriter(logger: logger)
        do {
            try accessLog.configure(config.accessLog)
        } catch {
            try? await group.shutdownGracefully()
            throw GatewayStartError(message: "\(error)")
        }
        let server = try ProxyServer(group: group, config: config, router: router, traffic: traffic, accessLog: accessLog, logger: logger)
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
        // Under a keeper, the keeper speaks first: which sockets to listen on and which
        // instances run already. The rest of the keeper's messages become causes below.
        let keeperEvents = AsyncStream<KeeperEvent>.makeStream()
        var hello: (hello: KeeperMessage.Hello, sockets: [Int32])?
        if let keeper {
            keeper.start(Self.handlers(keeperEvents.continuation, logger: logger))
            for await event in keeperEvents.stream {
                if case .hello(let message, let sockets) = event {
                    hello = (message, sockets)
                    break
                }
            }
            guard hello != nil else {
                try? await group.shutdownGracefully()
                throw GatewayStartError(message: "the keeper closed the link before its hello")
            }
        }
        var watchdog: GroupWatchdogClient?
        if keeper == nil, config.deployments.contains(where: { $0.process != nil }) || configPath != nil {
            do {
                watchdog = try GroupWatchdogClient.start(executable: [executable])
            } catch {
                logger.warning("no process-group watchdog; children may outlive a gateway killed with SIGKILL", metadata: ["error": "\(error)"])
            }
        }
        // The instances' output is kept by whoever reads their pipes: the keeper, or this process.
        let output = keeper == nil ? OutputLog(logger: logger) : nil
        let spawner: any ProcessLaunching = keeper
            ?? ProcessSpawner(launcher: [executable, "_launch", "--"], relay: .standard(log: output), watchdog: watchdog)
        // Backends registered in etcd, the fleet they belong to, and this gateway's published
        // instances (read, reported and written once it listens).
        let etcdClient = config.membership.map { EtcdClient(endpoints: $0.endpoints, group: group, dialTimeout: $0.dialTimeout) }
        // One lease for everything this gateway writes about itself: its report, its published
        // instances, its part in fleet rolls. They go together when it dies.
        let lease = etcdClient.map { EtcdLease(client: $0, ttl: 5, logger: logger) }
        let publisher = config.membership.flatMap { settings in
            etcdClient.flatMap { client in lease.map { InstancePublisher(client: client, prefix: settings.prefix, lease: $0, logger: logger) } }
        }
        let supervisor = ProcessSupervisor(
            spawner: spawner,
            delegate: SupervisedBackends(
                membership: membership, controller: controller, prober: HealthProber(group: group), server: server, logger: logger,
                keeper: keeper, publisher: publisher),
            logger: logger,
            environment: ProcessInfo.processInfo.environment.filter { $0.key != AdminSessions.keyVariable },
            events: { [events] event in SupervisorEvents.publish(event, to: events) }
        )
        let (shutdownRequests, shutdownContinuation) = AsyncStream<Duration?>.makeStream()
        let access = AdminAccess(config: config.admin, sessionKey: sessionKey, logger: logger)
        let operations = GatewayOperations(
            supervisor: supervisor, membership: membership, controller: controller, configPath: configPath,
            executablePath: executable, logger: logger, shutdownRequests: shutdownContinuation, tls: tls, keeper: keeper,
            access: access, events: events, output: keeper ?? output, accessLog: accessLog)

        // A worker that takes over: the instances it was handed are checked before anything
        // listens, so no request of this worker meets an instance that was not checked, and none
        // gets a 503 because the check has not passed yet. Instances it has to start (the first
        // worker, or ones missing) start now and join when ready, as they always did.
        var adoptedReady = 0
        if let hello {
            let adopted = keeper!.adoptedInstances(hello.hello)
            for deployment in config.deployments {
                if let spec = deployment.process {
                    await supervisor.adopt(deployment: deployment.name, spec: operations.resolve(spec), instances: adopted[deployment.name] ?? [])
                }
            }
            for (name, instances) in adopted where !config.deployments.contains(where: { $0.name == name && $0.process != nil }) {
                // The configuration changed between workers: not ours any more.
                for instance in instances {
                    logger.info("stopping an instance of a deployment no longer configured", metadata: ["instance": "\(name)#\(instance.index)", "pid": "\(instance.process.pid)"])
                    instance.process.signalGroup(SIGTERM)
                }
            }
            adoptedReady = await supervisor.settled()
        }

        var listeners: [Channel] = []
        let admin: Channel
        var adminSocket: Channel?
        let adminConnections = AdminConnections(maxConnections: config.admin.maxConnections, logger: logger)
        var gatewayID = ""
        var api = AdminAPI(
            controller: controller, defaultSuspendTimeout: config.shutdownTimeout, operations: operations, traffic: traffic,
            tls: tls.counters, connections: adminConnections, accessControl: access, events: events)
        do {
            for (index, listener) in config.listeners.enumerated() {
                let socket = try hello.map { try Self.socket(for: listener.listen, role: "proxy", index: index, in: $0) }
                listeners.append(try await server.bind(listener, index: index, tls: tls, socket: socket, paused: keeper != nil))
            }
            if let etcdClient, let settings = config.membership {
                // Named by the address it listens on (the port the system gave, for port 0).
                var listen = config.listeners[0].listen
                if let port = listeners.first?.localAddress?.port { listen.port = port }
                gatewayID = settings.resolvedGatewayID(listen: listen)
                api.fleet = FleetDirectory(client: etcdClient, prefix: settings.prefix, gatewayID: gatewayID)
            }
            admin = try await AdminServer.bind(
                config: config.admin,
                api: api,
                connections: adminConnections,
                group: group,
                socket: try hello.map { try Self.socket(for: config.admin.listen, role: "admin", index: 0, in: $0) },
                paused: keeper != nil
            )
            if let port = admin.localAddress?.port { access.listening(onPort: port) }
            if let path = config.admin.socket {
                let fd: Int32
                if let hello {
                    fd = try Self.socket(named: "unix:\(path)", role: "admin-socket", in: hello)
                } else {
                    fd = try ListeningSocket.bindUnix(path: path)
                }
                adminSocket = try await AdminServer.bindUnix(
                    config: config.admin, api: api, connections: adminConnections, group: group, socket: fd, paused: keeper != nil)
            }
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
                "admin_socket": "\(config.admin.socket ?? "none")",
                "threads": "\(threads)",
                "deployments": "\(config.deployments.map(\.name).joined(separator: ","))",
                "pid": "\(getpid())",
            ]
        )
        events.publish(
            "gateway", "worker \(getpid()) serving", ["state": .string("serving"), "pid": .int(Int(getpid())), "adopted": .int(adoptedReady)])
        if let keeper {
            keeper.becameReady(adopted: adoptedReady)
        } else {
            for deployment in config.deployments {
                if let spec = deployment.process {
                    await supervisor.add(deployment: deployment.name, spec: operations.resolve(spec))
                }
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

        // Backends registered in etcd: read and watched until the worker stops. An etcd that
        // cannot be reached delays nothing: the gateway serves its fixed and supervised backends.
        let leaseTask = Task { await lease?.run() }
        defer { leaseTask.cancel() }
        let registered = config.membership.flatMap { [gatewayID] settings in
            etcdClient.flatMap { client in
                lease.map { lease in
                    EtcdMembership(
                        config: settings, gatewayID: gatewayID, client: client, lease: lease, membership: membership,
                        controller: controller, prober: HealthProber(group: group), logger: logger)
                }
            }
        }
        let registeredTask = Task { await registered?.run() }
        defer { registeredTask.cancel() }
        await publisher?.identify(gatewayID)
        let publisherTask = Task { await publisher?.run() }
        defer { publisherTask.cancel() }
        let roller = config.membership.flatMap { settings in
            etcdClient.flatMap { client in
                lease.map { FleetRoller(client: client, prefix: settings.prefix, lease: $0, supervisor: supervisor, membership: membership, logger: logger) }
            }
        }
        await roller?.identify(gatewayID)
        let rollerTask = Task { await roller?.run() }
        defer { rollerTask.cancel() }

        // Wait for SIGTERM/SIGINT (the ServiceGroup turns them into a graceful shutdown) or for
        // POST /shutdown, whichever comes first.
        enum Cause: Sendable {
            case signal
            case request(Duration?)
            /// The keeper: a new worker serves, this one drains its connections and exits.
            case replaced
        }
        let adminChannels = [admin] + (adminSocket.map { [$0] } ?? [])
        let acceptingChannels = listeners + adminChannels
        let cause: Cause = await withTaskGroup(of: Cause?.self) { waits in
            waits.addTask {
                try? await gracefulShutdown()
                return .signal
            }
            waits.addTask {
                for await timeout in shutdownRequests { return .request(timeout) }
                return nil
            }
            waits.addTask {
                for await event in keeperEvents.stream {
                    switch event {
                    case .hello: continue
                    case .reload:
                        do {
                            let changes = try await operations.reload()
                            self.keeper?.reloadFinished(ok: true, message: changes.joined(separator: "; "))
                        } catch {
                            self.logger.error("reload failed", metadata: ["error": "\(error)"])
                            self.keeper?.reloadFinished(ok: false, message: "\(error)")
                        }
                    case .startAccepting:
                        // Our turn: the worker before us paused its listeners (or there was none).
                        for channel in acceptingChannels {
                            try? await channel.setOption(.autoRead, value: true).get()
                        }
                    case .drain: return .replaced
                    case .shutdown: return .signal
                    }
                }
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
        if case .replaced = cause {
            // The new worker writes the gateway's keys from now on; this one's lease expires.
            await registered?.stopReporting()
            rollerTask.cancel()
            await publisher?.handOver()
            await lease?.handOver()
            // The pages watching this worker reconnect, to the new one.
            events.finish()
            try await drainAfterReplacement(
                listeners: listeners + adminChannels, server: server, supervisor: supervisor, timeout: shutdownTimeout, group: group,
                adminConnections: adminConnections, accessLog: accessLog)
            return
        }
        if case .request = cause { keeper?.shuttingDown(reason: "POST /shutdown") }

        // Trapped before anything is logged, so a second signal is never missed. After a
        // shutdown by signal, the next signal means "now"; after POST /shutdown, the first
        // signal (a service manager's stop, say) is only the request again, the second one is "now".
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        // Under a keeper, signals are the keeper's business (it has its own second-signal rule).
        let signalsBeforeExit: Int
        if case .signal = cause { signalsBeforeExit = 1 } else { signalsBeforeExit = 2 }
        let secondSignal = Task {
            guard self.keeper == nil else { return }
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
        events.publish("gateway", "shutting down: draining for up to \(shutdownTimeout)", ["state": .string("shutting_down")])
        for listener in listeners { try? await listener.close() }
        let result = try await controller.suspend(.gateway, timeout: .after(shutdownTimeout))
        logger.info(
            "shutdown drain finished",
            metadata: ["drained": "\(result.drained)", "active": "\(result.active)"]
        )
        let connections = server.openConnections.load(ordering: .relaxed)
        await server.forEachLoop { $0.closeAllConnections() }
        server.stopParking()
        await Self.closeAccessLog(accessLog, server: server)
        // The gateway has drained: nothing is in flight to the instances any more.
        await supervisor.shutdown(drain: false)
        watchdog?.close()
        // The pages saw the drain to its end; now their streams end, and get a moment (bounded)
        // to write their last chunk before the event loops stop.
        events.finish()
        for channel in adminChannels { try? await channel.close() }
        _ = await waitForConnections(server, adminConnections, until: .now + .seconds(1))
        try? await group.shutdownGracefully()
        output?.flushFiles()
        logger.info("gateway stopped")
        keeper?.drainFinished(connections: connections)
    }

    /// A new worker serves on the same sockets: this one stops accepting, lets its own requests
    /// finish (HTTP/1.1 answers with `Connection: close`, HTTP/2 sends its GOAWAYs, tunnels end
    /// at the timeout), and exits. The instances belong to the new worker now and keep running.
    private func drainAfterReplacement(
        listeners: [Channel], server: ProxyServer, supervisor: ProcessSupervisor, timeout: Duration,
        group: MultiThreadedEventLoopGroup, adminConnections: AdminConnections, accessLog: AccessLogWriter
    ) async throws {
        await supervisor.detach()
        // Paused, not closed: NIO's bootstrap closes a connection whose setup on its event loop
        // finishes after the listener closed (a reset for a client that did nothing wrong). A
        // paused listener accepts nothing more, and the exit closes it once nothing is set up.
        for listener in listeners { try? await listener.setOption(.autoRead, value: false).get() }
        keeper?.stoppedAccepting()
        // Not a suspend: requests on connections this worker accepted have nowhere else to go,
        // so they are admitted and served as before; only their connections end with them.
        await server.forEachLoop { $0.startHandover() }
        let connections = server.openConnections.load(ordering: .relaxed)
        logger.info("replaced by a new worker: draining", metadata: ["connections": "\(connections)", "timeout": "\(timeout)"])
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var open = await waitForConnections(server, adminConnections, until: deadline)
        if open > 0 {
            // Tunnels (WebSocket) get 1001 and their clients reconnect, to the new worker; the
            // close frames go out before the connections close.
            logger.info("drain timeout: closing what is left", metadata: ["connections": "\(open)"])
            await server.forEachLoop { $0.closeTunnels(deployment: nil) }
            open = await waitForConnections(server, adminConnections, until: clock.now + .seconds(1))
        }
        logger.info("worker drained", metadata: ["connections": "\(connections)", "left": "\(open)"])
        await server.forEachLoop { $0.closeAllConnections() }
        server.stopParking()
        await Self.closeAccessLog(accessLog, server: server)
        try? await group.shutdownGracefully()
        keeper?.drainFinished(connections: connections)
    }

    /// Every loop's last lines (those of the connections just closed too) go to the writer, which
    /// writes them and stops. Off the cooperative pool: the writer's join may wait on a disk.
    private static func closeAccessLog(_ accessLog: AccessLogWriter, server: ProxyServer) async {
        await server.forEachLoop { $0.accessLog?.flush() }
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            Thread {
                accessLog.close()
                done.resume()
            }.start()
        }
    }

    /// Waits until this worker's client and admin connections have all closed, or `deadline`;
    /// returns how many client connections are left.
    private func waitForConnections(
        _ server: ProxyServer, _ adminConnections: AdminConnections, until deadline: ContinuousClock.Instant
    ) async -> Int {
        var open = server.openConnections.load(ordering: .relaxed)
        while open > 0 || adminConnections.snapshot().open > 0, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
            open = server.openConnections.load(ordering: .relaxed)
        }
        return open
    }

    /// What the keeper link says, as the service's run loop takes it.
    enum KeeperEvent: Sendable {
        case hello(KeeperMessage.Hello, [Int32])
        case drain
        case shutdown
        case reload
        case startAccepting
    }

    static func handlers(_ events: AsyncStream<KeeperEvent>.Continuation, logger: Logger) -> WorkerLink.Handlers {
        WorkerLink.Handlers(
            adopt: { hello, sockets in events.yield(.hello(hello, sockets)) },
            drain: { reason in
                logger.info("the keeper asks this worker to drain", metadata: ["reason": "\(reason)"])
                events.yield(.drain)
            },
            shutdown: { reason in
                logger.info("the keeper asks for a shutdown", metadata: ["reason": "\(reason)"])
                events.yield(.shutdown)
            },
            reload: { events.yield(.reload) },
            startAccepting: { events.yield(.startAccepting) },
            exit: { reason, failure in
                guard failure else { return }
                // Without its keeper a worker can neither start nor stop instances: it ends at
                // once (the keeper, if it still runs, starts another).
                logger.error("worker exiting", metadata: ["reason": "\(reason)"])
                Glibc.exit(1)
            })
    }

    /// The descriptor the keeper passed for the `index`th listener of `role` (the keeper sends
    /// them in the configuration's order; two listeners may both say port 0), checked against
    /// its address.
    static func socket(
        for address: HostPort, role: String, index: Int, in hello: (hello: KeeperMessage.Hello, sockets: [Int32])
    ) throws -> Int32 {
        let wanted = "\(address)"
        let ofRole = hello.hello.listeners.indices.filter { hello.hello.listeners[$0].role == role }
        guard index < ofRole.count, hello.hello.listeners[ofRole[index]].address == wanted, ofRole[index] < hello.sockets.count
        else {
            throw GatewayStartError(message: "the keeper passed no socket for the \(role) listener \(wanted)")
        }
        return hello.sockets[ofRole[index]]
    }

    /// The socket the keeper passed for the listener at `address` (a Unix socket's `unix:PATH`).
    static func socket(named address: String, role: String, in hello: (hello: KeeperMessage.Hello, sockets: [Int32])) throws -> Int32 {
        guard let index = hello.hello.listeners.firstIndex(where: { $0.role == role && $0.address == address }), index < hello.sockets.count
        else {
            throw GatewayStartError(message: "the keeper passed no socket for the \(role) listener \(address)")
        }
        return hello.sockets[index]
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

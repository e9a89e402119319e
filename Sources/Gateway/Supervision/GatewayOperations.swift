import Keeper
import Logging
import RequestControl
import Supervisor
import Synchronization

/// What the admin API and SIGHUP can ask of the running gateway beyond RequestControl: the
/// supervisor's operations, a configuration reload, a shutdown.
final class GatewayOperations: Sendable {
    let supervisor: ProcessSupervisor
    let membership: BackendMembership
    let controller: RequestController
    /// The file `reload` reads again; nil when the gateway was not started from a file.
    let configPath: String?
    private let logger: Logger
    private let shutdownRequests: AsyncStream<Duration?>.Continuation
    private let reloading = Mutex(false)
    /// How `command[0] == "gateway"` is run: the running binary itself, so the bundled example
    /// works whether or not `gateway` is on PATH.
    let executablePath: String
    /// The TLS listeners' certificates, read again on every reload.
    let tls: TLSListenerContexts
    /// The keeper this worker runs under; nil for a gateway on its own.
    let keeper: WorkerLink?
    /// Admin users and levels, changed by a reload.
    let access: AdminAccess?
    /// Reloads and upgrades are told here.
    let events: GatewayEventLog
    /// Where the instances' last output lines are read from (`gateway logs`): the keeper, or the
    /// log this process keeps when it runs without one.
    let output: (any OutputLogReading)?
    /// Reopened on every reload (so logrotate can move the file away), switched when
    /// `access_log` changed; nil for a gateway without one (tests).
    let accessLog: AccessLogWriter?

    init(
        supervisor: ProcessSupervisor, membership: BackendMembership, controller: RequestController,
        configPath: String?, executablePath: String, logger: Logger, shutdownRequests: AsyncStream<Duration?>.Continuation,
        tls: TLSListenerContexts = TLSListenerContexts([:]), keeper: WorkerLink? = nil, access: AdminAccess? = nil,
        events: GatewayEventLog = GatewayEventLog(), output: (any OutputLogReading)? = nil, accessLog: AccessLogWriter? = nil
    ) {
        self.access = access
        self.events = events
        self.accessLog = accessLog
        self.keeper = keeper
        self.output = output
        self.tls = tls
        self.supervisor = supervisor
        self.membership = membership
        self.controller = controller
        self.configPath = configPath
        self.executablePath = executablePath
        self.logger = logger
        self.shutdownRequests = shutdownRequests
    }

    /// The spec as the supervisor runs it.
    func resolve(_ spec: ProcessSpec) -> ProcessSpec {
        var spec = spec
        if spec.command.first == "gateway" { spec.command[0] = executablePath }
        return spec
    }

    /// Starts a graceful shutdown, as SIGTERM does; `timeout` replaces `shutdown_timeout`.
    func requestShutdown(timeout: Duration?) {
        shutdownRequests.yield(timeout)
    }

    enum ReloadError: Error, CustomStringConvertible {
        case noConfigFile
        case busy
        case invalid(ConfigError)
        case certificates(TLSConfigError)

        var description: String {
            switch self {
            case .certificates(let error): return "\(error); nothing changed, the running certificates stay"
            case .noConfigFile: return "the gateway was not started from a configuration file"
            case .busy: return "a reload is already in progress"
            case .invalid(let error): return "invalid configuration, nothing changed: \(error)"
            }
        }
    }

    /// Reads the configuration file again and applies the difference: deployments removed are
    /// drained and their processes stopped; added ones start; a deployment whose process spec
    /// changed is rolled (a changed instance count alone scales it); everything else (limits,
    /// timeouts, routes, fixed backends) changes in place without a restart. An invalid file
    /// changes nothing. Returns one line per change.
    func reload() async throws(ReloadError) -> [String] {
        guard let configPath else { throw .noConfigFile }
        let started = reloading.withLock { busy in
            if busy { return false }
            busy = true
            return true
        }
        guard started else { throw .busy }
        defer { reloading.withLock { $0 = false } }

        var new: GatewayConfig
        do {
            new = try ConfigLoader.load(path: configPath)
        } catch {
            logger.error("reload refused; the running configuration stays", metadata: ["error": "\(error)"])
            events.publish("reload", "reload refused: \(error)", ["ok": .bool(false), "error": .string("\(error)")])
            throw .invalid(error)
        }
        let old = await membership.config
        var changes: [String] = []
        if new.listeners.map(\.listen) != old.listeners.map(\.listen)
            || new.listeners.map(\.protocols) != old.listeners.map(\.protocols)
            || new.listeners.map({ $0.tls == nil }) != old.listeners.map({ $0.tls == nil })
        {
            let addresses = old.listeners.map(\.listen.description).joined(separator: ", ")
            changes.append("listener addresses, protocols and TLS on/off take a restart; still listening on \(addresses)")
            new.listeners = old.listeners
        }
        // Certificates and keys are read again even when their paths did not change (renewed
        // files); a bad one refuses the whole reload before anything else changes.
        let contexts: [Int: TLSServerContext]
        do {
            contexts = try TLSListenerContexts.load(new.listeners)
        } catch {
            logger.error("reload refused; the running configuration stays", metadata: ["error": "\(error)"])
            throw .certificates(error)
        }
        if new.admin != old.admin {
            // Who may do what changes at once; where the admin API listens needs a restart.
            var merged = old.admin
            merged.users = new.admin.users
            merged.socketAdmins = new.admin.socketAdmins
            merged.publicMetrics = new.admin.publicMetrics
            merged.hosts = new.admin.hosts
            merged.sessionTimeout = new.admin.sessionTimeout
            if merged != new.admin {
                changes.append(
                    "admin listen, socket, idle_timeout, request_timeout and max_connections take a restart; still on \(old.admin.listen)")
            }
            if merged != old.admin {
                access?.update(merged)
                changes.append("admin users, socket_admins, hosts, public_metrics and session_timeout updated")
            }
            new.admin = merged
        }
        if new.threads != old.threads {
            changes.append("threads take a restart; still \(old.threads.map(String.init) ?? "one per core")")
            new.threads = old.threads
        }
        if new.membership != old.membership {
            // The watch, the reports and the leases belong to the worker: a new one (gateway
            // upgrade) starts with the new settings, without dropping a connection.
            let still = old.membership.map { "etcd \($0.endpoints.map(\.description).joined(separator: ",")) prefix \($0.prefix)" } ?? "none"
            changes.append("membership takes a new worker (gateway upgrade); still \(still)")
            new.membership = old.membership
        }
        if new.limits != old.limits || new.timeouts != old.timeouts || new.shutdownTimeout != old.shutdownTimeout {
            changes.append("limits and timeouts updated in place")
        }
        if new.upgradeProtocols != old.upgradeProtocols {
            changes.append("upgrade_protocols now \(new.upgradeProtocols.joined(separator: ", ")) for new requests")
        }
        if new.http2 != old.http2 {
            changes.append("http2 settings updated for new connections")
        }
        if let accessLog {
            // Reopened even when unchanged: after logrotate moved the file, a reload makes the
            // worker write to a new one at the same path.
            do {
                try accessLog.configure(new.accessLog)
                if new.accessLog != old.accessLog {
                    changes.append(
                        new.accessLog.map { "access_log now \($0.path) (\($0.format.rawValue))" } ?? "access_log off")
                }
            } catch {
                logger.error("access log not reopened; it stays as it was", metadata: ["error": "\(error)"])
                changes.append("\(error); the access log stays as it was")
                new.accessLog = old.accessLog
            }
        }
        if new.timeouts.connect != old.timeouts.connect || new.timeouts.preSuspend != old.timeouts.preSuspend {
            changes.append("timeouts.connect and timeouts.pre_suspend take a restart; the running values stay")
        }
        let oldByName = Dictionary(uniqueKeysWithValues: old.deployments.map { ($0.name, $0) })
        let newNames = Set(new.deployments.map(\.name))

        // Removed: refuse new requests (503 draining), let those in flight finish, stop processes.
        for deployment in old.deployments where !newNames.contains(deployment.name) {
            let result = try? await controller.suspend(.deployment(deployment.name), timeout: .after(new.shutdownTimeout))
            if deployment.process != nil { await supervisor.remove(deployment: deployment.name) }
            changes.append(
                "deployment '\(deployment.name)' removed (drained: \(result?.drained ?? true)"
                    + (deployment.process != nil ? ", processes stopped)" : ")"))
        }
        await membership.apply(new)
        if !contexts.isEmpty {
            tls.replace(contexts)
            for (index, listener) in new.listeners.enumerated() where contexts[index] != nil {
                changes.append("TLS certificates of listener \(listener.listen) reloaded; established connections keep theirs")
            }
        }
        for deployment in new.deployments {
            guard let before = oldByName[deployment.name] else {
                if let spec = deployment.process { await supervisor.add(deployment: deployment.name, spec: resolve(spec)) }
                changes.append("deployment '\(deployment.name)' added" + (deployment.process != nil ? " (instances starting)" : ""))
                continue
            }
            switch (before.process, deployment.process) {
            case (nil, nil):
                if before != deployment { changes.append("deployment '\(deployment.name)' updated in place") }
            case (nil, let spec?):
                await supervisor.add(deployment: deployment.name, spec: resolve(spec))
                changes.append("deployment '\(deployment.name)' now runs its own processes (instances starting)")
            case (_?, nil):
                await supervisor.remove(deployment: deployment.name)
                changes.append("deployment '\(deployment.name)' no longer runs processes (stopped)")
            case (_?, let spec?):
                // Compared with what the instances run (a failed roll kept the previous spec),
                // so reloading the same file retries that roll.
                let running = await supervisor.spec(of: deployment.name)
                if running == resolve(spec) {
                    if before != deployment { changes.append("deployment '\(deployment.name)' updated in place") }
                } else {
                    let what = await supervisor.update(deployment: deployment.name, spec: resolve(spec))
                    changes.append("deployment '\(deployment.name)': \(what)")
                }
            }
        }
        if changes.isEmpty { changes.append("no changes") }
        logger.info("configuration reloaded", metadata: ["changes": "\(changes.joined(separator: "; "))"])
        events.publish("reload", "configuration reloaded: \(changes.joined(separator: "; "))", ["ok": .bool(true), "changes": .string(changes.joined(separator: "; "))])
        return changes
    }
}

import ArgumentParser
import Foundation
import Keeper
import Logging

/// `gateway run --config F`: the keeper. It binds every listening socket (or takes them from
/// systemd), becomes the parent of every instance, and runs the gateway proper as a worker
/// process (`gateway _worker`) that it can replace at an upgrade or after a crash without
/// closing a socket or stopping an instance.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the gateway with a configuration file."
    )

    @Option(name: .long, help: "The YAML configuration file.")
    var config: String

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    func run() throws {
        let level = logLevel
        ProcessStart.bootstrap(level: level)
        let logger = Logger(label: "keeper")
        let loaded = try ProcessStart.loadConfig(config)
        var environment = ProcessInfo.processInfo.environment
        // A keeper that re-executed itself into this program handed its state over; its sockets
        // are open already.
        let resumed = environment[KeeperState.variable].flatMap { try? JSONDecoder().decode(KeeperState.self, from: Data($0.utf8)) }
        let sockets: [(KeeperMessage.Listener, Int32)]
        if let resumed {
            sockets = Array(zip(resumed.listeners, resumed.sockets))
            for (_, fd) in sockets { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        } else {
            do {
                sockets = try Self.listeningSockets(loaded, environment: environment, logger: logger)
            } catch {
                FileHandle.standardError.write(Data("gateway: cannot listen: \(error)\n".utf8))
                throw ExitCode(1)
            }
        }
        // A socket file systemd made is systemd's to remove; one this keeper made is its own.
        let ownsAdminSocket = environment["LISTEN_FDS"] == nil
        let notifier = SystemdNotifier(environment: environment)
        // Ours alone: neither workers nor instances may think systemd talks to them.
        for name in ["NOTIFY_SOCKET", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", KeeperState.variable] {
            environment[name] = nil
            unsetenv(name)
        }
        // One key for every worker's session cookies, so a sign-in on the status page survives
        // an upgrade; kept in the keeper's own environment, which a re-exec carries over.
        let sessionKey = environment[AdminSessions.keyVariable] ?? TokenDigest(bytes: TokenDigest.randomBytes(32))!.hex
        setenv(AdminSessions.keyVariable, sessionKey, 1)
        environment[AdminSessions.keyVariable] = sessionKey
        let executable = GatewayService.executablePath()
        let keeper = KeeperProcess(
            configuration: .init(
                executable: executable,
                workerArguments: ["_worker", "--config", config, "--log-level", level.rawValue],
                keeperArguments: ["run", "--config", config, "--log-level", level.rawValue],
                listeners: sockets.map(\.0), sockets: sockets.map(\.1), workerEnvironment: environment,
                readyTimeout: Self.workerReadyTimeout(loaded)),
            logger: logger,
            notifier: notifier,
            resuming: resumed)
        logger.info(
            resumed == nil ? "keeper started" : "keeper resumed",
            metadata: ["pid": "\(getpid())", "listeners": "\(sockets.map(\.0.address).joined(separator: ","))", "version": "\(GatewayVersion.version)"])
        let status = keeper.run()
        if ownsAdminSocket, let path = loaded.admin.socket { unlink(path) }
        if status != 0 { throw ExitCode(status) }
    }

    /// A worker gets ready once the instances it adopts passed their checks: give it the longest
    /// `ready_timeout` of them, and some time of its own to start.
    static func workerReadyTimeout(_ config: GatewayConfig) -> Duration {
        let longest = config.deployments.compactMap { $0.process?.readyTimeout }.max() ?? .zero
        return longest + .seconds(30)
    }

    /// Every listener's socket (the proxy listeners in order, then the admin one): inherited
    /// from systemd when `LISTEN_FDS` passed one bound to its address, else bound here.
    static func listeningSockets(
        _ config: GatewayConfig, environment: [String: String], logger: Logger
    ) throws -> [(KeeperMessage.Listener, Int32)] {
        let activation = try SocketActivation(environment: environment)
        var wanted = config.listeners.map { (address: $0.listen, role: "proxy") }
        wanted.append((config.admin.listen, "admin"))
        var result: [(KeeperMessage.Listener, Int32)] = []
        var used: Set<Int32> = []
        do {
            for (address, role) in wanted {
                let listener = KeeperMessage.Listener(address: "\(address)", role: role)
                if let inherited = activation.socket(for: "\(address)") {
                    logger.info("listening socket from systemd", metadata: ["listen": "\(address)", "fd": "\(inherited.fd)"])
                    used.insert(inherited.fd)
                    result.append((listener, inherited.fd))
                } else {
                    result.append((listener, try ListeningSocket.bind(host: address.host, port: address.port)))
                }
            }
        } catch {
            for (_, fd) in result where !used.contains(fd) { close(fd) }
            throw error
        }
        if let path = config.admin.socket {
            let listener = KeeperMessage.Listener(address: "unix:\(path)", role: "admin-socket")
            if let inherited = activation.socket(for: "unix:\(path)") {
                used.insert(inherited.fd)
                result.append((listener, inherited.fd))
            } else {
                do {
                    result.append((listener, try ListeningSocket.bindUnix(path: path)))
                } catch {
                    for (_, fd) in result where !used.contains(fd) { close(fd) }
                    throw error
                }
            }
        }
        for socket in activation.sockets where !used.contains(socket.fd) {
            logger.warning("systemd passed a socket no listener is configured for; it is closed", metadata: ["address": "\(socket.address)"])
            close(socket.fd)
        }
        return result
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

import ArgumentParser
import Foundation
import Keeper
import Logging
import ServiceLifecycle

/// `gateway _worker --config F`: the gateway proper, started by the keeper (`gateway run`) with
/// its link on fd 3. It serves on the sockets the keeper passes, starts and signals instances
/// through the keeper, and is replaced by the keeper at an upgrade or after a crash.
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "_worker",
        abstract: "Serve as the keeper's worker (internal; `gateway run` starts it).",
        shouldDisplay: false
    )

    @Option(name: .long, help: "The YAML configuration file.")
    var config: String

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    /// The keeper's end of the link is the worker's fd 3.
    static let linkDescriptor: Int32 = 3

    func run() async throws {
        let generation = ProcessInfo.processInfo.environment["GATEWAY_WORKER_GENERATION"] ?? "?"
        ProcessStart.bootstrap(level: logLevel, metadata: ["worker": "\(generation)"])
        let logger = Logger(label: "gateway")
        guard fcntl(Self.linkDescriptor, F_GETFD) >= 0 else {
            FileHandle.standardError.write(Data("gateway: _worker is started by `gateway run`, with its keeper link on fd 3\n".utf8))
            throw ExitCode(2)
        }
        _ = fcntl(Self.linkDescriptor, F_SETFD, FD_CLOEXEC)
        // The keeper checked the file a moment ago; it may have changed since (a reload's edit).
        let loaded = try ProcessStart.loadConfig(config)
        let link = WorkerLink(descriptor: Self.linkDescriptor)
        let service = GatewayService(config: loaded, configPath: config, logger: logger, keeper: link)
        // No shutdown signals of its own: the keeper decides when a worker drains or shuts down.
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: service, successTerminationBehavior: .gracefullyShutdownGroup)],
                gracefulShutdownSignals: [],
                logger: logger
            )
        )
        do {
            try await group.run()
        } catch let error as GatewayStartError {
            FileHandle.standardError.write(Data("gateway: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}

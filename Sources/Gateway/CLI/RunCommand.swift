import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the gateway with a configuration file."
    )

    @Option(name: .long, help: "The YAML configuration file.")
    var config: String

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    func run() async throws {
        let level = logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        // The relay writes the instances' output to our stdout; if that is a pipe whose reader
        // went away, the write must fail, not kill the gateway. (Children get default signals.)
        signal(SIGPIPE, SIG_IGN)
        let logger = Logger(label: "gateway")
        let loaded: GatewayConfig
        do {
            loaded = try ConfigLoader.load(path: config)
        } catch {
            FileHandle.standardError.write(Data("gateway: invalid configuration: \(error)\n".utf8))
            throw ExitCode(2)
        }
        let service = GatewayService(config: loaded, configPath: config, logger: logger)
        let group = ServiceGroup(
            configuration: .init(
                // POST /shutdown ends `run` by itself; that is a normal end, not a failure.
                services: [.init(service: service, successTerminationBehavior: .gracefullyShutdownGroup)],
                gracefulShutdownSignals: [.sigterm, .sigint],
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

extension Logger.Level: @retroactive ExpressibleByArgument {}

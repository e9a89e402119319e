import ArgumentParser
import Foundation
import Logging

/// What `gateway run` (the keeper) and `gateway _worker` both do first.
enum ProcessStart {
    /// Log lines to stderr at `level`, each with `metadata` (the worker adds its generation).
    /// SIGPIPE ignored: the relay writes instances' output to stdout, and if that is a pipe
    /// whose reader went away the write must fail, not kill the process. (Children get the
    /// default signals.)
    static func bootstrap(level: Logger.Level, metadata: Logger.Metadata = [:]) {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            handler.metadata = metadata
            return handler
        }
        signal(SIGPIPE, SIG_IGN)
    }

    /// The configuration at `path`, or the error on stderr and exit status 2.
    static func loadConfig(_ path: String) throws -> GatewayConfig {
        do {
            return try ConfigLoader.load(path: path)
        } catch {
            FileHandle.standardError.write(Data("gateway: invalid configuration: \(error)\n".utf8))
            throw ExitCode(2)
        }
    }
}

import ArgumentParser

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

struct CheckConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate a configuration file and exit non-zero with the key and line of any error."
    )

    @Argument(help: "The YAML configuration file.")
    var file: String

    func run() throws {
        let config: GatewayConfig
        do {
            config = try ConfigLoader.load(path: self.file)
        } catch {
            // The error already says where and what; usage text would only bury it.
            Self.printError(error.description)
            throw ExitCode(1)
        }
        // The certificates as the gateway would load them: a bad file is found here, not at start.
        do {
            _ = try TLSListenerContexts.load(config.listeners)
        } catch {
            Self.printError("\(self.file): \(error)")
            throw ExitCode(1)
        }
        for warning in ConfigWarnings.find(in: config) {
            Self.printError("\(self.file): warning: \(warning)")
        }
        let entryPoints = config.deployments.reduce(0) { $0 + $1.entryPoints.count }
        let backends = config.deployments.reduce(0) { $0 + $1.backends.count }
        print(
            "\(self.file): ok (\(config.deployments.count) deployments, \(entryPoints) entry points, \(backends) backends)"
        )
    }

    private static func printError(_ message: String) {
        let bytes = Array((message + "\n").utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return }
            offset += written
        }
    }
}

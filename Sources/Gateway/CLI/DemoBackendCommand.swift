import ArgumentParser
import Logging
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

struct DemoBackendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo-backend",
        abstract: "A small HTTP origin for demos and tests.",
        discussion: """
            Endpoints: GET / (name and pid), GET /headers (request headers as JSON), \
            GET /sleep?ms=N, /echo (streams the body back), GET /status/N, GET /bytes?n=N, \
            GET /health, GET /ws (WebSocket echo). SIGTERM or SIGINT: stop accepting, let \
            requests in flight finish, exit 0.
            """
    )

    @Option(help: "Port to listen on; $PORT when absent.")
    var port: Int?

    @Option(help: "Name this backend answers with; $GATEWAY_INSTANCE (set by the gateway's supervisor) or \"demo\" when absent.")
    var name: String?

    @Option(help: "Address to listen on.")
    var host: String = "127.0.0.1"

    @Option(help: "Seconds a graceful shutdown waits for requests in flight.")
    var shutdownTimeout: Double = 30

    @Flag(help: "Print a line on stdout as each request arrives.")
    var logRequests = false

    func validate() throws {
        if let port, !(0...65535).contains(port) {
            throw ValidationError("--port must be from 0 to 65535, got \(port)")
        }
        // Bounded before the conversion to Duration, which traps on 1e300 (NaN fails both tests).
        guard self.shutdownTimeout >= 0, self.shutdownTimeout <= Double(ConfigBounds.maxDurationSeconds) else {
            throw ValidationError(
                "--shutdown-timeout must be a number of seconds from 0 to \(ConfigBounds.maxDurationSeconds) (365 days)")
        }
    }

    func run() async throws {
        let port = try self.resolvedPort()
        var logger = Logger(label: "demo-backend")
        logger.logLevel = .warning
        let backend = DemoBackend(
            host: self.host,
            port: port,
            name: self.name ?? getenv("GATEWAY_INSTANCE").map { String(cString: $0) } ?? "demo",
            drainTimeout: .milliseconds(Int64(self.shutdownTimeout * 1000)),
            logRequests: self.logRequests
        )
        let group = ServiceGroup(
            services: [backend],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        )
        try await group.run()
    }

    private func resolvedPort() throws -> Int {
        if let port = self.port { return port }
        guard let value = getenv("PORT").map({ String(cString: $0) }) else {
            throw ValidationError("no port: pass --port or set $PORT")
        }
        guard let port = Int(value), (0...65535).contains(port) else {
            throw ValidationError("$PORT must be a port number from 0 to 65535, got \"\(value)\"")
        }
        return port
    }
}

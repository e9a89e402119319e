import ArgumentParser
import Foundation
import Logging
import Membership
import NIOPosix

/// `gateway agent`: registers a backend the gateway does not supervise in etcd and drains it
/// across the fleet before it goes; `gateway agent drain` asks a running agent to do so.
struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Register a backend in etcd beside it, check it, and drain it across every gateway before it stops.",
        subcommands: [AgentRunCommand.self, AgentDrainCommand.self],
        defaultSubcommand: AgentRunCommand.self
    )
}

/// The options that name a registered backend.
struct AgentTarget: ParsableArguments {
    @Option(help: "etcd client addresses, comma-separated (HOST:PORT or http://HOST:PORT).")
    var etcd: String

    @Option(help: "The fleet's key prefix (as membership.etcd.prefix).")
    var prefix: String = "/gateway/"

    @Option(help: "The deployment the backend belongs to.")
    var deployment: String

    @Option(help: "The backend's address, HOST:PORT, as the gateways connect to it.")
    var address: String

    func validate() throws {
        _ = try endpoints()
        _ = try backend()
        guard prefix.hasPrefix("/"), prefix.hasSuffix("/"), prefix.count > 1 else {
            throw ValidationError("--prefix must start and end with /, like /gateway/, got \(prefix)")
        }
        guard !deployment.isEmpty, !deployment.contains("/") else {
            throw ValidationError("--deployment must be a deployment name without /, got \(deployment)")
        }
    }

    func endpoints() throws -> [HostPort] {
        let items = etcd.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !items.isEmpty else { throw ValidationError("--etcd needs at least one address") }
        return try items.map { item in
            switch HostPort.parseEtcdEndpoint(item) {
            case .success(let address): return address
            case .failure(let problem): throw ValidationError("--etcd: \(problem.message), got \(item)")
            }
        }
    }

    func backend() throws -> HostPort {
        switch HostPort.parse(address) {
        case .success(let address): return address
        case .failure(let problem): throw ValidationError("--address: \(problem.message), got \(address)")
        }
    }
}

struct AgentRunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Register the backend and keep it registered until SIGTERM, SIGINT or `gateway agent drain`.",
        discussion: """
            With a COMMAND after --, runs the app as a child in its own process group and stops it \
            (SIGTERM, then SIGKILL after --stop-timeout) only once every gateway has let go of it.
            """
    )

    @OptionGroup var target: AgentTarget

    @Option(help: "HTTP path to check (a 2xx or 3xx answer passes); without it, a TCP connect.")
    var health: String?

    @Option(help: "Seconds of the lease the key is bound to (kept alive every third of it).")
    var ttl: Int = 5

    @Option(help: "Seconds between health checks.")
    var checkInterval: Double = 1

    @Option(help: "Failed checks in a row after which the backend is marked draining.")
    var failures: Int = 3

    @Option(help: "Seconds a drain waits for every gateway to let go before deregistering anyway.")
    var drainTimeout: Double = 30

    @Option(help: "Seconds the app has to exit after SIGTERM before its group is killed.")
    var stopTimeout: Double = 30

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Argument(parsing: .postTerminator, help: "The app to run, after --.")
    var command: [String] = []

    func validate() throws {
        guard (1...3600).contains(ttl) else { throw ValidationError("--ttl must be from 1 to 3600 seconds, got \(ttl)") }
        guard (1...100).contains(failures) else { throw ValidationError("--failures must be from 1 to 100, got \(failures)") }
        for (name, value) in [("--check-interval", checkInterval), ("--drain-timeout", drainTimeout), ("--stop-timeout", stopTimeout)] {
            guard value > 0, value <= 86_400 else { throw ValidationError("\(name) must be a number of seconds from 0 to 86400, got \(value)") }
        }
        if let health, !health.hasPrefix("/") { throw ValidationError("--health must be a path starting with /, got \(health)") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level: unknown level \(logLevel)") }
    }

    func run() async throws {
        ProcessStart.bootstrap(level: Logger.Level(rawValue: logLevel) ?? .info)
        let settings = Agent.Settings(
            endpoints: try target.endpoints(), prefix: target.prefix, deployment: target.deployment, address: try target.backend(),
            healthPath: health, ttl: ttl, checkInterval: .seconds(checkInterval), failures: failures,
            drainTimeout: .seconds(drainTimeout), stopTimeout: .seconds(stopTimeout), command: command)
        let status = await Agent(settings: settings, group: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "agent")).run()
        if status != 0 { throw ExitCode(status) }
    }
}

struct AgentDrainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drain",
        abstract: "Ask the backend's agent to drain it, and wait until it has left every gateway's rotation."
    )

    @OptionGroup var target: AgentTarget

    @Option(help: "Seconds to wait for the agent to deregister the backend.")
    var wait: Double = 60

    func validate() throws {
        guard wait > 0, wait <= 86_400 else { throw ValidationError("--wait must be a number of seconds from 0 to 86400, got \(wait)") }
    }

    func run() async throws {
        let client = EtcdClient(endpoints: try target.endpoints(), group: MultiThreadedEventLoopGroup.singleton, dialTimeout: .seconds(2))
        let address = try target.backend().description
        let memberKey = MemberRecord.key(prefix: target.prefix, deployment: target.deployment, address: address)
        guard try await client.get(key: memberKey) != nil else {
            print("gateway agent drain: \(target.deployment)/\(address) is not registered under \(target.prefix)")
            throw ExitCode(1)
        }
        // Bound to a lease, so a request nobody serves does not stay behind.
        let lease = try await client.grantLease(ttl: Int(wait.rounded(.up)) + 30)
        try await client.put(key: DrainRequest.key(prefix: target.prefix, deployment: target.deployment, address: address), value: "drain", lease: lease)
        print("gateway agent drain: asked the agent of \(target.deployment)/\(address) to drain")
        let deadline = ContinuousClock.now + .seconds(wait)
        while ContinuousClock.now < deadline {
            if try await client.get(key: memberKey) == nil {
                print("gateway agent drain: \(target.deployment)/\(address) has left every gateway and is deregistered")
                return
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        print("gateway agent drain: still registered after \(wait) s (is its agent running?)")
        throw ExitCode(1)
    }
}

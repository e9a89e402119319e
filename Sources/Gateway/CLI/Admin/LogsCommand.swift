import ArgumentParser
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `gateway logs D[#N] [--lines K] [-f]`: the last output lines of supervised instances, and
/// with `-f` the new ones as they come, like `tail -f`.
struct LogsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs",
        abstract: "Show the last output lines of a deployment's instances (GET /deployments/D/instances/N/logs).",
        discussion: """
            The gateway keeps each instance's last 1,000 output lines (stdout and stderr, at \
            most 1 MiB) in memory, also across restarts of the instance and upgrades of the \
            gateway's worker. DEPLOYMENT#N shows one instance; DEPLOYMENT shows all of its \
            instances, merged by time, each line prefixed with the instance name. --follow (-f) \
            then prints new lines as they come (a long poll) until Ctrl-C; an instance that is \
            restarted meanwhile is followed into its new process.

            \(AdminExitCode.discussion)
            """
    )

    /// How long one poll of `--follow` waits for a new line at the gateway.
    static let followWaitSeconds = 10

    @OptionGroup var connection: AdminConnectionOptions

    @Argument(help: ArgumentHelp("The deployment, or one instance of it.", valueName: "DEPLOYMENT[#N]"))
    var target: String

    @Option(name: [.customShort("n"), .long], help: "Lines to show first, per instance (1 to 1000).")
    var lines = 100

    @Flag(name: [.customShort("f"), .long], help: "Keep printing new lines until interrupted.")
    var follow = false

    func validate() throws {
        try InstanceAction.validate(self.target)
        guard (1...1000).contains(self.lines) else {
            throw ValidationError("--lines must be from 1 to 1000, got '\(self.lines)'")
        }
    }

    func run() async throws {
        try await AdminCommandRunner.run {
            let client = try self.connection.client()
            let target = try AdminScope.parseTarget(self.target).get()
            let deployment: String
            let instances: [Int]
            switch target {
            case .instance(let d, let index):
                (deployment, instances) = (d, [index])
            case .deployment(let d):
                deployment = d
                let list = try await client.send(.GET, "/processes", timeout: AdminCommandRunner.queryTimeout)
                    .decoded(AdminAnswer.ProcessList.self, from: client.endpoint)
                let indices = Set(list.processes.filter { $0.deployment == d }.compactMap(\.index))
                guard !indices.isEmpty else { throw AdminFailure(message: "no supervised deployment '\(d)'") }
                instances = indices.sorted()
            default:
                preconditionFailure("validated: a deployment or an instance")
            }
            let prefixed: Bool
            if case .deployment = target { prefixed = true } else { prefixed = false }

            var pages: [AdminAnswer.Logs] = []
            for index in instances {
                pages.append(try await Self.fetch(client, deployment: deployment, index: index, query: [("lines", "\(self.lines)")]))
            }
            Self.write(InstanceLogLines.merged(pages, prefixed: prefixed))
            guard self.follow else { return }

            try await withThrowingTaskGroup(of: Void.self) { group in
                for page in pages {
                    group.addTask {
                        try await Self.followInstance(client, deployment: deployment, from: page, prefixed: prefixed)
                    }
                }
                try await group.next()
                group.cancelAll()
            }
        }
    }

    /// Polls one instance until the task is cancelled or a request fails.
    private static func followInstance(_ client: AdminClient, deployment: String, from first: AdminAnswer.Logs, prefixed: Bool) async throws {
        let index = Int(first.instance.split(separator: "#").last ?? "") ?? 0
        var after = InstanceLogLines.next(after: first)
        var unreachableSince: ContinuousClock.Instant?
        while !Task.isCancelled {
            let page: AdminAnswer.Logs
            do {
                page = try await fetch(
                    client, deployment: deployment, index: index,
                    query: [("after", "\(after)"), ("wait", "\(followWaitSeconds)"), ("lines", "1000")])
                unreachableSince = nil
            } catch let error as AdminClientError {
                // A worker being replaced (an upgrade) closes the connection; the next one
                // answers within moments. Give up only after a while without any answer.
                let since = unreachableSince ?? .now
                unreachableSince = since
                guard ContinuousClock.now - since < followReconnectFor else { throw error }
                try await Task.sleep(for: .milliseconds(200))
                continue
            }
            // More came than one answer holds: say so rather than skip lines silently.
            if page.gap == true, after > 0 { write(["[\(first.instance)] ... lines skipped (more than one answer holds) ..."]) }
            write(InstanceLogLines.merged([page], prefixed: prefixed))
            after = InstanceLogLines.next(after: page)
        }
    }

    private static func fetch(
        _ client: AdminClient, deployment: String, index: Int, query: [(name: String, value: String)]
    ) async throws -> AdminAnswer.Logs {
        try await client.send(
            .GET, "/deployments/\(AdminClient.percentEncode(deployment))/instances/\(index)/logs", query: query,
            timeout: AdminCommandRunner.queryTimeout + .seconds(followWaitSeconds)
        ).decoded(AdminAnswer.Logs.self, from: client.endpoint)
    }

    /// How long `-f` keeps trying while the admin API does not answer (a worker replaced, a
    /// gateway restarting) before it gives up with the error.
    static let followReconnectFor: Duration = .seconds(30)

    private static let output = Mutex(())

    /// Whole lines at once, flushed: a follower's reader (a pipe) sees each line as it comes.
    private static func write(_ lines: [String]) {
        guard !lines.isEmpty else { return }
        output.withLock { _ in
            AdminOutput.lines(lines)
            fflush(nil)
        }
    }
}

import ArgumentParser

/// `gateway shutdown`: a graceful shutdown, as SIGTERM would do it, over the admin API.
struct ShutdownCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shutdown",
        abstract: "Drain the gateway and stop it (and the processes it supervises).",
        discussion: """
            POST /shutdown?timeout=S. The gateway answers 202 once it has started shutting \
            down; it then drains for up to S seconds (default: its shutdown_timeout) and exits. \
            The command does not wait for the exit.

            \(AdminExitCode.discussion)
            """
    )

    @OptionGroup var connection: AdminConnectionOptions

    @Option(help: ArgumentHelp("Seconds the gateway waits for requests in flight (default: its shutdown_timeout).", valueName: "seconds"))
    var timeout: Double?

    func validate() throws {
        try AdminCommandRunner.validateTimeout(self.timeout, allowNegative: false)
    }

    func run() async throws {
        try await AdminCommandRunner.run {
            let client = try self.connection.client()
            let query = self.timeout.map { [(name: "timeout", value: AdminFormat.trimmed($0))] } ?? []
            let response = try await client.send(
                .POST,
                "/shutdown",
                query: query,
                timeout: AdminCommandRunner.clientTimeout(forServerTimeout: self.timeout)
            )
            let answer = try response.decoded(AdminAnswer.Shutdown.self, from: client.endpoint)
            guard answer.shuttingDown else { throw AdminFailure(message: AdminReport.shutdown(answer)) }
            AdminOutput.lines([AdminReport.shutdown(answer)])
        }
    }
}

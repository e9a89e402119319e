import ArgumentParser

/// `gateway suspend [SCOPE]`: stop admitting requests for a scope and wait for it to drain.
struct SuspendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "suspend",
        abstract: "Stop admitting requests for a scope and wait until its requests in flight finish.",
        discussion: """
            POST /suspend. SCOPE: none = the whole gateway; DEPLOYMENT; DEPLOYMENT/ENTRY_POINT; \
            DEPLOYMENT#N (one instance); DEPLOYMENT@HOST:PORT (one backend). The gateway first \
            takes the scope out of rotation (for the whole gateway, /ready turns 503), then \
            refuses new requests with 503 and answers when nothing is in flight or --timeout \
            has passed (0 = do not wait, negative = wait for ever; default: its \
            shutdown_timeout). The command waits --timeout plus 30 s (15 min without \
            --timeout, for ever with a negative one). A suspend that timed out (drained: no) or was cancelled by a resume \
            exits 1. Undo with `gateway resume` and the same SCOPE.

            \(AdminExitCode.discussion)
            """
    )

    @OptionGroup var connection: AdminConnectionOptions

    @Argument(help: ArgumentHelp("What to suspend (default: the whole gateway).", valueName: "scope"))
    var scope: String?

    // `.unconditional` so that `--timeout -1` is read as a value, not as an option.
    @Option(
        parsing: .unconditional,
        help: ArgumentHelp("Seconds to wait for the drain (0 = do not wait, <0 = for ever).", valueName: "seconds")
    )
    var timeout: Double?

    func validate() throws {
        if case .failure(let error) = AdminScope.parse(self.scope) { throw ValidationError(error.description) }
        try AdminCommandRunner.validateTimeout(self.timeout, allowNegative: true)
    }

    func run() async throws {
        try await AdminCommandRunner.run {
            let scope = try AdminScope.parse(self.scope).get()
            let client = try self.connection.client()
            var query = scope.queryItems
            if let timeout = self.timeout { query.append((name: "timeout", value: AdminFormat.trimmed(timeout))) }
            let response = try await client.send(
                .POST,
                "/suspend",
                query: query,
                timeout: AdminCommandRunner.clientTimeout(forServerTimeout: self.timeout)
            )
            let answer = try response.decoded(AdminAnswer.Suspend.self, from: client.endpoint)
            AdminOutput.lines(AdminReport.suspend(answer))
            if let failure = AdminReport.suspendFailure(answer) { throw AdminFailure(message: failure) }
        }
    }
}

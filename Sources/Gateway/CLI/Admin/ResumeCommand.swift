import ArgumentParser

/// `gateway resume [SCOPE]`: admit requests again.
struct ResumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume",
        abstract: "Admit requests for a scope again, cancelling a suspend in progress.",
        discussion: """
            POST /resume. SCOPE as for `gateway suspend`: none = the whole gateway; DEPLOYMENT; \
            DEPLOYMENT/ENTRY_POINT; DEPLOYMENT#N; DEPLOYMENT@HOST:PORT. A scope stays refused \
            while a scope around it (the gateway, its deployment) is suspended.

            \(AdminExitCode.discussion)
            """
    )

    @OptionGroup var connection: AdminConnectionOptions

    @Argument(help: ArgumentHelp("What to resume (default: the whole gateway).", valueName: "scope"))
    var scope: String?

    func validate() throws {
        if case .failure(let error) = AdminScope.parse(self.scope) { throw ValidationError(error.description) }
    }

    func run() async throws {
        try await AdminCommandRunner.run {
            let scope = try AdminScope.parse(self.scope).get()
            let client = try self.connection.client()
            let response = try await client.send(
                .POST,
                "/resume",
                query: scope.queryItems,
                timeout: AdminCommandRunner.queryTimeout
            )
            let answer = try response.decoded(AdminAnswer.Resume.self, from: client.endpoint)
            AdminOutput.lines(AdminReport.resume(answer))
        }
    }
}

import ArgumentParser

/// `gateway reload`: re-read the configuration file.
struct ReloadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload",
        abstract: "Make the gateway re-read its configuration file and apply the changes.",
        discussion: """
            POST /reload. Prints each change the gateway made (deployments added, removed, \
            rolled), or the configuration error with its file, line and column, in which case \
            the gateway keeps running with the configuration it had.

            \(AdminExitCode.discussion)
            """
    )

    @OptionGroup var connection: AdminConnectionOptions

    func run() async throws {
        try await AdminCommandRunner.run {
            let client = try self.connection.client()
            let response = try await client.send(.POST, "/reload", timeout: AdminCommandRunner.operationTimeout)
            let answer = try response.decoded(AdminAnswer.Reload.self, from: client.endpoint)
            guard answer.ok else {
                AdminOutput.lines(AdminReport.reload(answer))
                throw AdminFailure(message: "the reload was not applied")
            }
            AdminOutput.lines(AdminReport.reload(answer))
        }
    }
}

import ArgumentParser

/// `gateway start D[#N]`.
struct StartCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "start",
        abstract: "Start a deployment's stopped instances, or one instance.",
        discussion: """
            POST /deployments/DEPLOYMENT/start, or /deployments/DEPLOYMENT/instances/N/start for \
            DEPLOYMENT#N. Also the way back for an instance that gave up (FAILED).

            \(AdminExitCode.discussion)
            """
    )

    @OptionGroup var connection: AdminConnectionOptions

    @Argument(help: ArgumentHelp("DEPLOYMENT, or DEPLOYMENT#N for one instance.", valueName: "target"))
    var target: String

    func validate() throws { try InstanceAction.validate(self.target) }

    func run() async throws {
        try await InstanceAction.start.perform(target: self.target, connection: self.connection)
    }
}

import ArgumentParser

/// `gateway stop D[#N]`.
struct StopCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stop",
        abstract: "Stop a deployment's instances, or one instance, after draining them.",
        discussion: """
            POST /deployments/DEPLOYMENT/stop, or /deployments/DEPLOYMENT/instances/N/stop for \
            DEPLOYMENT#N. Each instance leaves the rotation and drains before it is signalled; \
            the gateway answers when they have stopped.

            \(AdminExitCode.discussion)
            """
    )

    @OptionGroup var connection: AdminConnectionOptions

    @Argument(help: ArgumentHelp("DEPLOYMENT, or DEPLOYMENT#N for one instance.", valueName: "target"))
    var target: String

    func validate() throws { try InstanceAction.validate(self.target) }

    func run() async throws {
        try await InstanceAction.stop.perform(target: self.target, connection: self.connection)
    }
}

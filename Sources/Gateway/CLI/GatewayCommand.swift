import ArgumentParser

/// The `gateway` executable: a request gateway that proxies, counts, limits and drains.
@main
struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "A graceful-shutdown request gateway and reverse proxy.",
        version: GatewayVersion.version,
        subcommands: [
            RunCommand.self,
            CheckConfigCommand.self,
            StatusCommand.self,
            LogsCommand.self,
            RestartCommand.self,
            StopCommand.self,
            StartCommand.self,
            ReloadCommand.self,
            ShutdownCommand.self,
            SuspendCommand.self,
            ResumeCommand.self,
            VersionCommand.self,
            DemoBackendCommand.self,
            UpgradeCommand.self,
            EventsCommand.self,
            AdminTokenCommand.self,
            AgentCommand.self,
            LaunchCommand.self, WatchdogCommand.self, WorkerCommand.self,
        ]
    )
}

import ArgumentParser

/// `gateway status`: the supervised processes, like `pm2 ls`.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the processes the gateway supervises (GET /processes).",
        discussion: """
            First a line for the keeper and one for the worker (GET /health), then the \
            instances. Columns: NAME (instance), PID, PORT, STATE (SUSPENDED or DRAINING when a \
            suspend of the instance, its deployment or the gateway holds its traffic back), READY, \
            ACTIVE (requests in flight), REQUESTS (total), CRASHES and PLANNED (restarts after a \
            crash or health kill, and those asked for: restart, roll, reload), UPTIME, MEMORY \
            (resident, the instance's whole process tree), CPU (same tree), and REASON / LAST EXIT \
            when the terminal is wide enough; '-' where the gateway does not know. Below the \
            table, the command each instance runs, $PORT expanded. --json prints the gateway's \
            JSON unchanged. --fleet lists every gateway and registered backend of the fleet from \
            etcd instead (GET /fleet; a gateway with `membership`).

            \(AdminExitCode.discussion)
            """
    )

    @OptionGroup var connection: AdminConnectionOptions

    @Flag(help: "Print the gateway's JSON answer unchanged.")
    var json = false

    @Flag(help: "List every gateway and registered backend of the fleet, as etcd has them (GET /fleet).")
    var fleet = false

    func run() async throws {
        try await AdminCommandRunner.run {
            let client = try self.connection.client()
            if self.fleet {
                let response = try await client.send(.GET, "/fleet", timeout: AdminCommandRunner.queryTimeout)
                if self.json {
                    try response.requireSuccess()
                    AdminOutput.raw(response.body)
                } else {
                    AdminOutput.lines(FleetTable.render(
                        try response.decoded(FleetDirectory.Document.self, from: client.endpoint, decoder: FleetTable.decoder)))
                }
                return
            }
            let response = try await client.send(.GET, "/processes", timeout: AdminCommandRunner.queryTimeout)
            if self.json {
                try response.requireSuccess()
                AdminOutput.raw(response.body)
                return
            }
            let list = try response.decoded(AdminAnswer.ProcessList.self, from: client.endpoint)
            // The gateway's own processes first: who holds the sockets, who serves.
            let health = try await client.send(.GET, "/health", timeout: AdminCommandRunner.queryTimeout)
                .decoded(AdminAnswer.Health.self, from: client.endpoint)
            AdminOutput.lines(AdminReport.gatewayProcesses(health))
            AdminOutput.lines(ProcessTable.render(list.processes, width: AdminOutput.terminalWidth))
        }
    }
}

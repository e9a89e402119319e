import ArgumentParser

/// `gateway restart D`: a rolling restart of one deployment's instances.
struct RestartCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restart",
        abstract: "Roll a deployment's instances, one at a time, without dropping a request.",
        discussion: """
            POST /deployments/DEPLOYMENT/restart. The gateway answers when the roll is done; one \
            line per instance is printed, then a summary. If an instance does not get ready, the \
            roll stops, the old instance keeps serving, and the exit code is 1.

            \(AdminExitCode.discussion)
            """
    )

    @OptionGroup var connection: AdminConnectionOptions

    @Argument(help: "The deployment to restart.")
    var deployment: String

    @Option(help: ArgumentHelp("Seconds to wait for the gateway to finish the roll (default 900).", valueName: "seconds"))
    var timeout: Double?

    @Flag(help: "Roll the deployment on every gateway of the fleet (etcd), at most --max-unavailable hosts at once.")
    var fleet = false

    @Option(help: ArgumentHelp("With --fleet: hosts rolling at once (default: the deployment's fleet_max_unavailable, 1).", valueName: "hosts"))
    var maxUnavailable: Int?

    func validate() throws {
        guard AdminScope.isName(self.deployment) else {
            throw ValidationError(
                "invalid deployment '\(self.deployment)': a name has only letters, digits, '_', '.' and '-'"
            )
        }
        try AdminCommandRunner.validateTimeout(self.timeout, allowNegative: false, allowZero: false)
        if let maxUnavailable, !fleet || !(1...1000).contains(maxUnavailable) {
            throw ValidationError("--max-unavailable takes a number of hosts from 1 to 1000, with --fleet")
        }
    }

    func run() async throws {
        try await AdminCommandRunner.run {
            let client = try self.connection.client()
            let wait = self.timeout.map { Duration.milliseconds(Int64(($0 * 1000).rounded(.up))) }
            if self.fleet {
                var path = "/deployments/\(AdminClient.percentEncode(self.deployment))/restart?fleet=1"
                if let maxUnavailable = self.maxUnavailable { path += "&max_unavailable=\(maxUnavailable)" }
                if let timeout = self.timeout { path += "&timeout=\(timeout)" }
                let response = try await client.send(.POST, path, timeout: (wait ?? .seconds(900)) + .seconds(30))
                // A roll that did not complete is a 500 that still carries the answer.
                let answer: FleetDirectory.RollAnswer
                if response.status == 500, let report = try? FleetTable.decoder.decode(FleetDirectory.RollAnswer.self, from: response.body) {
                    answer = report
                } else {
                    answer = try response.decoded(FleetDirectory.RollAnswer.self, from: client.endpoint, decoder: FleetTable.decoder)
                }
                AdminOutput.lines(answer.gateways.map { "\($0.gateway): \($0.state)\($0.detail.map { " (\($0))" } ?? "")" })
                let summary = answer.ok
                    ? "fleet roll of \(self.deployment) done on \(answer.gateways.count) gateway(s), at most \(answer.max_unavailable) at once"
                        + (answer.lost.isEmpty ? "" : "; lost mid-roll: \(answer.lost.joined(separator: ", "))")
                    : "fleet roll of \(self.deployment) did not complete"
                        + (answer.pending.isEmpty ? "" : "; still pending: \(answer.pending.joined(separator: ", "))")
                guard answer.ok, response.isSuccess else { throw AdminFailure(message: summary) }
                AdminOutput.lines([summary])
                return
            }
            let response = try await client.send(
                .POST,
                "/deployments/\(AdminClient.percentEncode(self.deployment))/restart",
                timeout: wait ?? AdminCommandRunner.operationTimeout
            )
            // A failed roll is a 500 that still carries the report; other errors are `{"error"}`.
            let answer: AdminAnswer.Restart
            if response.status == 500,
                let report = try? AdminJSON.decoder.decode(AdminAnswer.Restart.self, from: response.body)
            {
                answer = report
            } else {
                answer = try response.decoded(AdminAnswer.Restart.self, from: client.endpoint)
            }
            AdminOutput.lines((answer.steps ?? []).map(AdminReport.restartStep))
            let summary = AdminReport.restartSummary(answer, deployment: self.deployment)
            guard answer.ok, response.isSuccess else { throw AdminFailure(message: summary) }
            AdminOutput.lines([summary])
        }
    }
}

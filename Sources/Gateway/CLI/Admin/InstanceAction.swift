import ArgumentParser
import NIOHTTP1

/// `gateway stop` and `gateway start` share everything but the verb.
enum InstanceAction: String, Sendable {
    case stop
    case start

    /// `/deployments/D/stop` for every instance, `/deployments/D/instances/N/stop` for one.
    func path(for target: AdminScope) -> String {
        switch target {
        case .instance(let deployment, let index):
            return "/deployments/\(AdminClient.percentEncode(deployment))/instances/\(index)/\(self.rawValue)"
        case .deployment(let deployment):
            return "/deployments/\(AdminClient.percentEncode(deployment))/\(self.rawValue)"
        default:
            preconditionFailure("stop and start take a deployment or an instance, validated before")
        }
    }

    func perform(target text: String, connection: AdminConnectionOptions) async throws {
        try await AdminCommandRunner.run {
            let target = try AdminScope.parseTarget(text).get()
            let client = try connection.client()
            let response = try await client.send(
                .POST,
                self.path(for: target),
                timeout: AdminCommandRunner.operationTimeout
            )
            let answer = try response.decoded(AdminAnswer.Instances.self, from: client.endpoint)
            AdminOutput.lines(AdminReport.instances(answer, width: AdminOutput.terminalWidth))
        }
    }

    static func validate(_ text: String) throws {
        if case .failure(let error) = AdminScope.parseTarget(text) {
            throw ValidationError(error.description)
        }
    }
}

import ArgumentParser
import Foundation

/// `gateway upgrade [--binary PATH]`: replace the running worker without losing a connection.
struct UpgradeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "upgrade",
        abstract: "Replace the gateway's worker (with a new binary) without refusing a connection or restarting an instance.",
        discussion: """
            POST /upgrade[?binary=PATH]. The keeper starts a new worker from PATH (default: the \
            keeper's own binary, so replacing that file and running `gateway upgrade` upgrades); \
            it takes over the listening sockets and the running instances, checks them, and \
            starts accepting; only then the old worker stops accepting, finishes its requests and \
            exits. The command waits for that and prints which worker serves now. If the new \
            worker cannot start or get ready, the old one keeps serving and the command fails. \
            SIGUSR2 to the keeper does the same with its own binary.

            \(AdminExitCode.discussion)
            """
    )

    @OptionGroup var connection: AdminConnectionOptions

    @Option(help: ArgumentHelp("The gateway binary the new worker runs (default: the keeper's own).", valueName: "path"))
    var binary: String?

    func run() async throws {
        try await AdminCommandRunner.run {
            let client = try self.connection.client()
            var query: [(name: String, value: String)] = []
            if let binary = self.binary {
                // The gateway resolves nothing against its own directory: send an absolute path.
                let absolute = binary.hasPrefix("/") ? binary : FileManager.default.currentDirectoryPath + "/" + binary
                query.append((name: "binary", value: absolute))
            }
            let response = try await client.send(.POST, "/upgrade", query: query, timeout: .seconds(300))
            let answer = try response.decoded(AdminAnswer.Upgrade.self, from: client.endpoint)
            AdminOutput.lines(["upgraded: \(answer.message)"])
        }
    }
}

import ArgumentParser

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the gateway with a configuration file."
    )

    @Option(name: .long, help: "The YAML configuration file.")
    var config: String

    func run() async throws {
        throw ValidationError("not implemented yet")
    }
}

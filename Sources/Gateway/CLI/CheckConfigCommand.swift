import ArgumentParser

struct CheckConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate a configuration file and exit non-zero with the key and line of any error."
    )

    @Argument(help: "The YAML configuration file.")
    var file: String

    func run() throws {
        throw ValidationError("not implemented yet")
    }
}

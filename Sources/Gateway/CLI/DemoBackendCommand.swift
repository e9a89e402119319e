import ArgumentParser

struct DemoBackendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo-backend",
        abstract: "A small HTTP origin for demos and tests."
    )

    @Option(help: "Port to listen on; $PORT when absent.")
    var port: Int?

    @Option(help: "Name this backend answers with.")
    var name: String = "demo"

    func run() async throws {
        throw ValidationError("not implemented yet")
    }
}

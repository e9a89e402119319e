import ArgumentParser

/// `gateway admin-token --name N --level L`: a new random token for an admin user, printed once,
/// with the configuration line that holds only its SHA-256.
struct AdminTokenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "admin-token",
        abstract: "Make a random admin token and print the admin.users entry for it.",
        discussion: """
            The token (256 random bits) is printed once, on stdout's first line; keep it in a \
            secret store and give it to the client as --token-file, $GATEWAY_TOKEN or \
            `Authorization: Bearer`. The configuration gets only its SHA-256, printed below it as \
            an admin.users entry; add it under admin.users and reload. Nothing is written to disk.
            """
    )

    @Option(name: .long, help: "The user's name (1-64 letters, digits, '.', '_', '-', '@').")
    var name: String

    @Option(name: .long, help: "viewer, operator or admin.")
    var level: String

    func validate() throws {
        guard AdminUserName.isValid(name) else {
            throw ValidationError("--name must have 1 to 64 letters, digits, '.', '_', '-' or '@', got '\(name)'")
        }
        guard AdminLevel(rawValue: level) != nil else {
            throw ValidationError("--level must be one of \(AdminLevel.names), got '\(level)'")
        }
    }

    func run() throws {
        let token = TokenDigest.newToken()
        let digest = TokenDigest(of: token)
        print(token)
        print("")
        print("# add under admin.users (the token above is not stored anywhere; only its SHA-256 is):")
        print("    - name: \(name)")
        print("      token_sha256: \(digest.hex)")
        print("      level: \(level)")
    }
}

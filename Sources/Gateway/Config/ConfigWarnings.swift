import Supervisor

/// What a valid configuration says that is probably not what was meant; `check-config` prints
/// it as warnings (the file is still accepted).
enum ConfigWarnings {
    /// Programs whose arguments are a script for a shell that expands variables itself.
    static let shells: Set<String> = ["sh", "bash", "dash", "zsh", "ksh", "ash"]

    /// One line per problem, each starting with its key path.
    static func find(in config: GatewayConfig) -> [String] {
        var warnings: [String] = []
        for (index, deployment) in config.deployments.enumerated() {
            guard let process = deployment.process else { continue }
            let key = "deployments[\(index)].process"
            let program = process.command.first.map { String($0.split(separator: "/").last ?? "") } ?? ""
            if !shells.contains(program) {
                for (position, argument) in process.command.enumerated() {
                    warnings += unexpanded(argument, at: "\(key).command[\(position)]")
                }
            }
            if let cwd = process.workingDirectory {
                warnings += unexpanded(cwd, at: "\(key).cwd")
            }
        }
        return warnings
    }

    private static func unexpanded(_ text: String, at keyPath: String) -> [String] {
        CommandExpansion.unexpandedNames(in: text).map { name in
            "\(keyPath): $\(name) is not expanded (only $PORT, ${PORT}, $GATEWAY_INSTANCE and $GATEWAY_DEPLOYMENT are); "
                + "use `sh -c` for shell expansion"
        }
    }
}

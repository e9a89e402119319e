import Foundation

@testable import Gateway

/// The admin user every harness gateway has: the admin API denies everything without a token,
/// so tests of other things act as this `admin` user. The CLI children find the token in
/// `$GATEWAY_TOKEN`, which `withAdminUser` sets for the whole test process.
enum TestAdmin {
    static let token = "gw_harness-token-for-tests-only"
    static let userName = "harness"

    /// `yaml` with the harness user added to its `admin:` section (`listen: {admin}` in block
    /// or flow style); unchanged when it configures users itself.
    static func withAdminUser(_ yaml: String) -> String {
        setenv(AdminConnectionOptions.tokenVariable, token, 1)
        guard !yaml.contains("users:") else { return yaml }
        let entry = "[{name: \(userName), token_sha256: \(TokenDigest(of: token).hex), level: admin}]"
        var lines: [String] = []
        for line in yaml.components(separatedBy: "\n") {
            if line.contains("{listen: {admin}}") {
                lines.append(line.replacingOccurrences(of: "{listen: {admin}}", with: "{listen: {admin}, users: \(entry)}"))
                continue
            }
            lines.append(line)
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed == "listen: {admin}" {
                let indent = String(line.prefix { $0 == " " })
                lines.append("\(indent)users: \(entry)")
            }
        }
        return lines.joined(separator: "\n")
    }
}

import ArgumentParser

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `--admin URL`, shared by every admin subcommand.
struct AdminConnectionOptions: ParsableArguments {
    @Option(
        name: .customLong("admin"),
        help: ArgumentHelp(
            "The gateway's admin API (default: $\(AdminEndpoint.environmentVariable), else \(AdminEndpoint.defaultURL)).",
            valueName: "url"
        )
    )
    var admin: String?

    func validate() throws {
        _ = try self.endpoint()
    }

    /// The URL from `--admin`, else `$GATEWAY_ADMIN` (when set and not empty), else the default;
    /// a bad one is a usage error (exit 64) that names the value and where it came from.
    func endpoint() throws(ValidationError) -> AdminEndpoint {
        let text: String
        var origin = ""
        if let admin = self.admin {
            text = admin
        } else if let value = getenv(AdminEndpoint.environmentVariable).map({ String(cString: $0) }), !value.isEmpty {
            text = value
            origin = " (from $\(AdminEndpoint.environmentVariable))"
        } else {
            text = AdminEndpoint.defaultURL
        }
        switch AdminEndpoint.parse(text) {
        case .success(let endpoint):
            return endpoint
        case .failure(let error):
            throw ValidationError(error.description + origin)
        }
    }

    func client() throws -> AdminClient {
        AdminClient(endpoint: try self.endpoint())
    }
}

import ArgumentParser
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `--admin`, `--token`, `--token-file` and `--config`, shared by every admin subcommand.
struct AdminConnectionOptions: ParsableArguments {
    /// The environment variable that holds a token when no option gives one.
    static let tokenVariable = "GATEWAY_TOKEN"

    @Option(
        name: .customLong("admin"),
        help: ArgumentHelp(
            "The gateway's admin API: http://HOST:PORT or unix:/PATH (default: $\(AdminEndpoint.environmentVariable), else the "
                + "socket of --config, else \(AdminEndpoint.conventionalSocket) when it exists, else \(AdminEndpoint.defaultURL)).",
            valueName: "url"
        )
    )
    var admin: String?

    @Option(
        name: .customLong("token"),
        help: ArgumentHelp(
            "An admin token (default: --token-file, else $\(Self.tokenVariable)). Other local users can see command lines; prefer those.",
            valueName: "token"))
    var token: String?

    @Option(name: .customLong("token-file"), help: ArgumentHelp("A file that holds the admin token.", valueName: "path"))
    var tokenFile: String?

    @Option(
        name: .customLong("config"),
        help: ArgumentHelp("The gateway's configuration, to find its admin socket or listener.", valueName: "path"))
    var config: String?

    func validate() throws {
        _ = try self.endpoint()
        _ = try self.resolvedToken()
    }

    /// `--admin`, else `$GATEWAY_ADMIN` (when set and not empty), else the admin socket of
    /// `--config` (when it exists; its TCP listener otherwise), else the conventional socket when
    /// it exists, else the default URL. A bad one is a usage error (exit 64) that names the value
    /// and where it came from.
    func endpoint() throws(ValidationError) -> AdminEndpoint {
        let text: String
        var origin = ""
        if let admin = self.admin {
            text = admin
        } else if let value = getenv(AdminEndpoint.environmentVariable).map({ String(cString: $0) }), !value.isEmpty {
            text = value
            origin = " (from $\(AdminEndpoint.environmentVariable))"
        } else if let config {
            let loaded: GatewayConfig
            do {
                loaded = try ConfigLoader.load(path: config)
            } catch {
                throw ValidationError("--config: \(error)")
            }
            if let socket = loaded.admin.socket, FileManager.default.fileExists(atPath: socket) {
                return .unix(socket)
            }
            let listen = loaded.admin.listen
            let host = ["0.0.0.0", "::"].contains(listen.host) ? "127.0.0.1" : listen.host
            text = "http://\(host.contains(":") ? "[\(host)]" : host):\(listen.port)"
            origin = " (from \(config))"
        } else if FileManager.default.fileExists(atPath: AdminEndpoint.conventionalSocket) {
            return .unix(AdminEndpoint.conventionalSocket)
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

    /// `--token`, else the first line of `--token-file`, else `$GATEWAY_TOKEN`; nil when none.
    func resolvedToken() throws(ValidationError) -> String? {
        if let token {
            guard !token.isEmpty else { throw ValidationError("--token is empty") }
            return token
        }
        if let tokenFile {
            guard let data = FileManager.default.contents(atPath: tokenFile) else {
                throw ValidationError("--token-file: cannot read \(tokenFile)")
            }
            let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard !token.isEmpty else { throw ValidationError("--token-file: \(tokenFile) is empty") }
            return token
        }
        if let value = getenv(Self.tokenVariable).map({ String(cString: $0) }), !value.isEmpty {
            return value
        }
        return nil
    }

    func client() throws -> AdminClient {
        AdminClient(endpoint: try self.endpoint(), token: try self.resolvedToken())
    }
}

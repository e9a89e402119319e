import ProxyRules
/// Where the admin API listens, parsed from `--admin` (or `$GATEWAY_ADMIN`): `http://HOST:PORT`
/// or `unix:/PATH` (the admin socket).
///
/// Only `http://` is accepted for TCP: the admin API has no TLS, and a URL that silently lost
/// its `https` would send operations somewhere the operator did not mean.
struct AdminEndpoint: Sendable, Equatable, CustomStringConvertible {
    /// The config's default admin address.
    static let defaultURL = "http://127.0.0.1:9901"
    /// The environment variable that overrides `defaultURL` when `--admin` is absent.
    static let environmentVariable = "GATEWAY_ADMIN"

    /// Host name or IP address (IPv6 without brackets), for connecting.
    var host: String
    var port: Int
    /// A path prefix the endpoints are under (empty, or starting with `/` and without a trailing
    /// one), for an admin API behind a path-routing proxy.
    var basePath: String
    /// The admin socket's path, for `unix:PATH`; then host and port mean nothing.
    var socketPath: String? = nil

    /// The socket the documented examples configure; the CLI's default when it exists.
    static let conventionalSocket = "/run/gateway/admin.sock"

    static func unix(_ path: String) -> AdminEndpoint {
        AdminEndpoint(host: "localhost", port: 0, basePath: "", socketPath: path)
    }

    /// The `Host` header: the authority as the URL gave it (any name on the socket).
    var hostHeader: String {
        if socketPath != nil { return "localhost" }
        let name = self.host.contains(":") ? "[\(self.host)]" : self.host
        return self.port == 80 ? name : "\(name):\(self.port)"
    }

    var description: String {
        if let socketPath { return "unix:\(socketPath)" }
        return "http://\(self.hostHeader)\(self.basePath)"
    }

    struct ParseError: Error, CustomStringConvertible {
        var description: String
    }

    /// Parses `http://HOST[:PORT][/PATH]`; the error names the text and says what is wrong.
    static func parse(_ text: String) -> Result<AdminEndpoint, ParseError> {
        func failure(_ why: String) -> Result<AdminEndpoint, ParseError> {
            .failure(ParseError(description: "invalid admin URL '\(text)': \(why)"))
        }
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst(5))
            guard path.hasPrefix("/") else { return failure("expected unix:/absolute/path/to/admin.sock") }
            return .success(.unix(path))
        }
        let scheme = "http://"
        guard text.lowercased().hasPrefix(scheme) else {
            if let colon = text.range(of: "://") {
                return failure("only http:// is supported, not \(text[..<colon.lowerBound])://")
            }
            return failure("expected http://HOST:PORT, as in \(Self.defaultURL), or unix:/PATH of the admin socket")
        }
        let rest = text.dropFirst(scheme.count)
        if rest.contains("?") || rest.contains("#") {
            return failure("a query or fragment has no meaning here")
        }
        let authority = rest.prefix { $0 != "/" }
        var path = String(rest.dropFirst(authority.count))
        while path.hasSuffix("/") { path.removeLast() }
        if authority.contains("@") {
            return failure("user information is not supported")
        }
        guard !authority.isEmpty else {
            return failure("no host")
        }
        let host: Substring
        let portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else {
                return failure("an IPv6 address needs a closing ]")
            }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            guard after.isEmpty || after.hasPrefix(":") else {
                return failure("expected :PORT after the IPv6 address")
            }
            portText = after.isEmpty ? nil : after.dropFirst()
            guard host.contains(":"), host.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else {
                return failure("expected an IPv6 address between [ and ]")
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
            guard HostName.isValid(host) else {
                return failure("expected a host name or IP address")
            }
        } else {
            host = authority
            portText = nil
            guard HostName.isValid(host) else {
                return failure("expected a host name or IP address")
            }
        }
        var port = 80
        if let portText {
            guard !portText.isEmpty, portText.allSatisfy(\.isASCII), portText.allSatisfy(\.isNumber),
                let value = Int(portText), (1...65535).contains(value)
            else {
                return failure("the port must be a number from 1 to 65535")
            }
            port = value
        }
        return .success(AdminEndpoint(host: host.lowercased(), port: port, basePath: path))
    }
}

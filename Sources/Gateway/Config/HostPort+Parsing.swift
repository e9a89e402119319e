import ProxyRules
extension HostPort {
    /// Parses `host:port`, `[ipv6]:port` or `name:port`, port 1-65535 (or 0 with
    /// `allowAnyPort`: a listener that takes whatever free port the system gives it).
    ///
    /// The host is kept as written (lower-cased names, IPv6 without brackets); resolving names
    /// is left to the moment of connecting, so that `localhost` means what the host says.
    static func parse(_ text: String, allowAnyPort: Bool = false) -> Result<HostPort, ConfigValueProblem> {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else {
                return .failure(ConfigValueProblem("expected [ipv6]:port"))
            }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else {
                return .failure(ConfigValueProblem("expected a port after the address, as in [::1]:8080"))
            }
            portText = rest.dropFirst()
            guard host.contains(":"), host.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else {
                return .failure(ConfigValueProblem("expected an IPv6 address between [ and ]"))
            }
        } else {
            guard let colon = text.lastIndex(of: ":") else {
                return .failure(ConfigValueProblem("expected host:port, as in 127.0.0.1:8080"))
            }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") {
                return .failure(ConfigValueProblem("an IPv6 address needs brackets, as in [::1]:8080"))
            }
            guard HostName.isValid(host) else {
                return .failure(ConfigValueProblem("expected a host name or IP address before the port"))
            }
        }
        let lowest = allowAnyPort ? 0 : 1
        guard let port = Int(portText), portText.allSatisfy(\.isNumber), (lowest...65535).contains(port) else {
            return .failure(ConfigValueProblem("expected a port from \(lowest) to 65535"))
        }
        return .success(HostPort(host: host.lowercased(), port: port))
    }
}

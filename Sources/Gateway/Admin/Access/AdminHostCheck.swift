import ProxyRules

/// The `Host` and `Origin` checks of the TCP listener, against DNS rebinding and cross-site
/// requests from a browser. The Unix socket is out of a browser's reach and skips them.
///
/// A `Host` is accepted when its name is the listener's own address, a loopback name for a
/// loopback listener, any IP address for a listener on all addresses, or one of `admin.hosts`;
/// and its port (80 when absent) is the listener's. A name an attacker controls that resolves
/// to 127.0.0.1 matches none of these.
struct AdminHostCheck: Sendable, Equatable {
    var listenHost: String
    var port: Int
    var names: [String]

    /// Lower-cased, without port or brackets; nil when it is not a host.
    static func normalizeName(_ text: some StringProtocol) -> String? {
        HostName.normalize(text)
    }

    func accepts(host field: String) -> Bool {
        guard let name = HostName.normalize(field) else { return false }
        guard Self.port(of: field) == port else { return false }
        if names.contains(name) { return true }
        let listen = listenHost.lowercased()
        if name == listen { return true }
        let loopback = ["127.0.0.1", "::1", "localhost"]
        if loopback.contains(listen) && loopback.contains(name) { return true }
        if listen == "0.0.0.0" || listen == "::" { return Self.isIPAddress(name) }
        return false
    }

    /// Same-origin: `Origin` is `http://` plus the request's own `Host`.
    static func isSameOrigin(_ origin: String, host: String) -> Bool {
        origin.lowercased() == "http://" + host.lowercased()
    }

    static func port(of field: String) -> Int? {
        let afterHost: Substring
        if field.hasPrefix("[") {
            guard let close = field.firstIndex(of: "]") else { return nil }
            afterHost = field[field.index(after: close)...]
        } else if let colon = field.firstIndex(of: ":") {
            afterHost = field[colon...]
        } else {
            afterHost = ""
        }
        if afterHost.isEmpty { return 80 }
        return Int(afterHost.dropFirst())
    }

    static func isIPAddress(_ name: String) -> Bool {
        if name.contains(":") { return true }  // IPv6: normalize accepted it only in brackets
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { part in !part.isEmpty && part.count <= 3 && part.allSatisfy(\.isNumber) && Int(part)! <= 255 }
    }
}

/// Host names as deployments match them: lower-cased, without a port, IPv6 without brackets.
///
/// The config loader normalises `hosts:` with this, and request routing should normalise the
/// `Host` header with the same function, so the two can never disagree about what matches.
public enum HostName {
    /// `Shop.Local:8080` → `shop.local`, `[::1]:8080` → `::1`; `nil` when it is not a host name
    /// or address (empty, spaces, `*`, a bad port).
    public static func normalize(_ text: some StringProtocol) -> String? {
        var host = Substring(text)
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return nil }
            let rest = host[host.index(after: close)...]
            guard rest.isEmpty || Self.isPortSuffix(rest) else { return nil }
            host = host[host.index(after: host.startIndex)..<close]
            guard host.contains(":"), host.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else {
                return nil
            }
            return host.lowercased()
        }
        if let colon = host.firstIndex(of: ":") {
            guard Self.isPortSuffix(host[colon...]) else { return nil }
            host = host[..<colon]
        }
        guard Self.isValid(host) else { return nil }
        return host.lowercased()
    }

    /// Letters, digits, `-`, `_` and dots between non-empty labels (names as written in DNS
    /// and IPv4 addresses alike).
    public static func isValid(_ host: some StringProtocol) -> Bool {
        guard !host.isEmpty, host.count <= 253 else { return false }
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        return labels.allSatisfy { label in
            !label.isEmpty && label.count <= 63
                && label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }
        }
    }

    private static func isPortSuffix(_ text: Substring) -> Bool {
        let digits = text.dropFirst()
        guard text.hasPrefix(":"), !digits.isEmpty, digits.count <= 5, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            return false
        }
        return Int(digits).map { $0 <= 65535 } ?? false
    }
}

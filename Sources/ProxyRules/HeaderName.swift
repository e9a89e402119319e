/// Case-insensitive header-name checks that do not allocate: the proxy looks at every header of
/// every request and response, and `lowercased()` plus a `Set<String>` lookup per header showed
/// up in profiles.
public enum HeaderName {
    /// Hop-by-hop headers (RFC 9110 7.6.1): the business of one connection, never forwarded.
    public static func isHopByHop(_ name: String) -> Bool {
        switch name.utf8.count {
        case 2: return equals(name, "te")
        case 7: return equals(name, "trailer") || equals(name, "upgrade")
        case 10: return equals(name, "connection") || equals(name, "keep-alive")
        case 16: return equals(name, "proxy-connection")
        case 17: return equals(name, "transfer-encoding")
        case 18: return equals(name, "proxy-authenticate")
        case 19: return equals(name, "proxy-authorization")
        default: return false
        }
    }

    /// The fields that frame a message body; the gateway writes them itself for what it forwards.
    public static func isFraming(_ name: String) -> Bool {
        switch name.utf8.count {
        case 14: return equals(name, "content-length")
        case 17: return equals(name, "transfer-encoding")
        default: return false
        }
    }

    /// The `X-Forwarded-*` headers the gateway sets itself.
    public static func isForwarded(_ name: String) -> Bool {
        switch name.utf8.count {
        case 15: return equals(name, "x-forwarded-for")
        case 16: return equals(name, "x-forwarded-host")
        case 17: return equals(name, "x-forwarded-proto")
        default: return false
        }
    }

    /// ASCII case-insensitive equality against a lower-case literal.
    public static func equals(_ name: String, _ lowercase: StaticString) -> Bool {
        let count = lowercase.utf8CodeUnitCount
        guard name.utf8.count == count else { return false }
        return lowercase.withUTF8Buffer { expected in
            var index = 0
            for byte in name.utf8 {
                let folded = (byte >= 65 && byte <= 90) ? byte | 0x20 : byte
                if folded != expected[index] { return false }
                index += 1
            }
            return true
        }
    }

    /// Equality ignoring ASCII case of two runtime strings.
    public static func equals(_ a: some StringProtocol, _ b: some StringProtocol) -> Bool {
        guard a.utf8.count == b.utf8.count else { return false }
        return zip(a.utf8, b.utf8).allSatisfy { x, y in
            ((x >= 65 && x <= 90) ? x | 0x20 : x) == ((y >= 65 && y <= 90) ? y | 0x20 : y)
        }
    }
}

/// Case-insensitive header-name checks that do not allocate: the proxy looks at every header of
/// every request and response, and `lowercased()` plus a `Set<String>` lookup per header showed
/// up in profiles.
public enum HeaderName {
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

/// Host names as deployments match them: lower-cased, without a port, IPv6 without brackets.
///
/// The config loader normalises `hosts:` with this, and request routing should normalise the
/// `Host` header with the same function, so the two can never disagree about what matches.
public enum HostName {
    /// `Shop.Local:8080` → `shop.local`, `[::1]:8080` → `::1`; `nil` when it is not a host name
    /// or address (empty, spaces, `*`, a bad port).
    public static func normalize(_ text: some StringProtocol) -> String? {
        let bytes = Array(text.utf8)
        guard let host = hostRange(bytes) else { return nil }
        return String(decoding: bytes[host].map { ($0 >= 65 && $0 <= 90) ? $0 | 0x20 : $0 }, as: UTF8.self)
    }

    /// Whether a `Host` field is a valid host (and optional port), checked on its bytes without
    /// allocating: every request's Host is checked, routing by host or not.
    public static func isValidField(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { hostRange($0) != nil }
    }

    /// The same check on a field value's bytes (the lean HTTP/1.1 path has no String of it).
    public static func isValidField(_ bytes: Slice<UnsafeRawBufferPointer>) -> Bool {
        let rebased = UnsafeRawBufferPointer(rebasing: bytes)
        return hostRange(rebased) != nil
    }

    /// `normalize` of a field value's bytes: lower-cased host without port, or nil.
    public static func normalize(_ bytes: Slice<UnsafeRawBufferPointer>) -> String? {
        let rebased = UnsafeRawBufferPointer(rebasing: bytes)
        guard let host = hostRange(rebased) else { return nil }
        return String(decoding: rebased[host].map { ($0 >= 65 && $0 <= 90) ? $0 | 0x20 : $0 }, as: UTF8.self)
    }

    /// Letters, digits, `-`, `_` and dots between non-empty labels (names as written in DNS
    /// and IPv4 addresses alike).
    public static func isValid(_ host: some StringProtocol) -> Bool {
        let bytes = Array(host.utf8)
        return isValidName(bytes, 0..<bytes.count)
    }

    /// The bytes of the host in `host[:port]` or `[ipv6][:port]` (without brackets and port).
    private static func hostRange<Bytes: RandomAccessCollection<UInt8>>(_ bytes: Bytes) -> Range<Int>? where Bytes.Index == Int {
        let start = bytes.startIndex
        let end = bytes.endIndex
        guard start < end else { return nil }
        if bytes[start] == UInt8(ascii: "[") {
            guard let close = bytes[start...].firstIndex(of: UInt8(ascii: "]")) else { return nil }
            guard close + 1 == end || isPortSuffix(bytes, close + 1) else { return nil }
            let inner = (start + 1)..<close
            var sawColon = false
            for byte in bytes[inner] {
                if byte == UInt8(ascii: ":") { sawColon = true; continue }
                guard isHexDigit(byte) || byte == UInt8(ascii: ".") else { return nil }
            }
            return sawColon ? inner : nil
        }
        let colon = bytes[start...].firstIndex(of: UInt8(ascii: ":"))
        if let colon, !isPortSuffix(bytes, colon) { return nil }
        let host = start..<(colon ?? end)
        return isValidName(bytes, host) ? host : nil
    }

    private static func isValidName<Bytes: RandomAccessCollection<UInt8>>(_ bytes: Bytes, _ range: Range<Int>) -> Bool
    where Bytes.Index == Int {
        guard !range.isEmpty, range.count <= 253 else { return false }
        var label = 0
        for byte in bytes[range] {
            if byte == UInt8(ascii: ".") {
                guard label > 0 else { return false }
                label = 0
                continue
            }
            let allowed =
                (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x30 && byte <= 0x39)
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
            guard allowed else { return false }
            label += 1
            guard label <= 63 else { return false }
        }
        return label > 0
    }

    /// `:` and 1 to 5 digits at most 65535, to the end.
    private static func isPortSuffix<Bytes: RandomAccessCollection<UInt8>>(_ bytes: Bytes, _ colon: Int) -> Bool
    where Bytes.Index == Int {
        guard bytes[colon] == UInt8(ascii: ":") else { return false }
        let digits = bytes[(colon + 1)...]
        guard !digits.isEmpty, digits.count <= 5 else { return false }
        var value = 0
        for byte in digits {
            guard byte >= 0x30 && byte <= 0x39 else { return false }
            value = value * 10 + Int(byte - 0x30)
        }
        return value <= 65535
    }

    private static func isHexDigit(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x61 && byte <= 0x66) || (byte >= 0x41 && byte <= 0x46)
    }
}

/// The byte classes and small parsers of HTTP/1.1 syntax (RFC 9110 5.6, RFC 9112) that the head
/// and chunked-body scanners share. Every check is on bytes: no String, no table to initialise.
enum HTTP1Syntax {
    static let cr: UInt8 = 0x0D
    static let lf: UInt8 = 0x0A
    static let sp: UInt8 = 0x20
    static let htab: UInt8 = 0x09
    static let colon: UInt8 = 0x3A
    static let comma: UInt8 = 0x2C
    static let semicolon: UInt8 = 0x3B
    static let equals: UInt8 = 0x3D
    static let quote: UInt8 = 0x22
    static let backslash: UInt8 = 0x5C

    /// tchar (RFC 9110 5.6.2): `!#$%&'*+-.^_`|~`, digits and letters, as two 64-bit masks.
    private static let tcharLow: UInt64 = 0x03FF_6CFA_0000_0000
    private static let tcharHigh: UInt64 = 0x57FF_FFFF_C7FF_FFFE

    @inline(__always)
    static func isTchar(_ byte: UInt8) -> Bool {
        if byte < 64 { return (tcharLow >> UInt64(byte)) & 1 == 1 }
        if byte < 128 { return (tcharHigh >> UInt64(byte &- 64)) & 1 == 1 }
        return false
    }

    /// SP or HTAB (OWS, RFC 9110 5.6.3).
    @inline(__always)
    static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == sp || byte == htab
    }

    /// A byte a field value may hold (RFC 9110 5.5): VCHAR, obs-text, SP, HTAB. Everything else
    /// (NUL, CR, LF, the other controls, DEL) is refused.
    @inline(__always)
    static func isFieldValueByte(_ byte: UInt8) -> Bool {
        (byte >= 0x20 && byte != 0x7F) || byte == htab
    }

    /// A byte of a request-target as the scanner accepts it: visible ASCII (no SP, CTL, DEL or
    /// obs-text; RFC 3986 has no place for them, and a percent-encoding says them all).
    @inline(__always)
    static func isTargetByte(_ byte: UInt8) -> Bool {
        byte > 0x20 && byte < 0x7F
    }

    // Eight bytes at a time (SWAR): the long runs of a head are values and targets, almost all
    // plain ASCII; a word with any byte that needs a closer look is left to the byte loop.

    private static let ones: UInt64 = 0x0101_0101_0101_0101
    private static let highs: UInt64 = 0x8080_8080_8080_8080

    /// Whether some byte of `word` is less than `bound` (at most 128).
    @inline(__always)
    private static func hasByteBelow(_ word: UInt64, _ bound: UInt64) -> Bool {
        (word &- ones &* bound) & ~word & highs != 0
    }

    /// Whether some byte of `word` is `byte`.
    @inline(__always)
    private static func hasByte(_ word: UInt64, _ byte: UInt64) -> Bool {
        let folded = word ^ (ones &* byte)
        return (folded &- ones) & ~folded & highs != 0
    }

    /// The offset of the first byte from `index` (before `limit`) that is not plainly a field
    /// value byte (a control, HTAB included, or DEL), or the last word boundary before `limit`.
    @inline(__always)
    static func skipValueBytes(_ bytes: UnsafeRawBufferPointer, from index: Int, limit: Int) -> Int {
        var index = index
        while index &+ 8 <= limit {
            let word = bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            if hasByteBelow(word, 0x20) || hasByte(word, 0x7F) { break }
            index &+= 8
        }
        return index
    }

    /// Likewise for target bytes: stops at a word with SP, a control, DEL or obs-text.
    @inline(__always)
    static func skipTargetBytes(_ bytes: UnsafeRawBufferPointer, from index: Int, limit: Int) -> Int {
        var index = index
        while index &+ 8 <= limit {
            let word = bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            if word & highs != 0 || hasByteBelow(word, 0x21) || hasByte(word, 0x7F) { break }
            index &+= 8
        }
        return index
    }

    /// qdtext (RFC 9110 5.6.4) less obs-text: the scanner refuses non-ASCII in chunk extensions.
    @inline(__always)
    static func isQuotedTextByte(_ byte: UInt8) -> Bool {
        byte == htab || byte == sp || byte == 0x21 || (byte >= 0x23 && byte <= 0x5B) || (byte >= 0x5D && byte <= 0x7E)
    }

    /// What may follow `\` in a quoted-string (RFC 9110 5.6.4) less obs-text.
    @inline(__always)
    static func isQuotedPairByte(_ byte: UInt8) -> Bool {
        byte == htab || (byte >= 0x20 && byte <= 0x7E)
    }

    @inline(__always)
    static func isDigit(_ byte: UInt8) -> Bool {
        byte &- 0x30 < 10
    }

    /// The value of a hex digit, or nil.
    @inline(__always)
    static func hexValue(_ byte: UInt8) -> Int? {
        if byte &- 0x30 < 10 { return Int(byte &- 0x30) }
        let folded = byte | 0x20
        if folded &- 0x61 < 6 { return Int(folded &- 0x61) + 10 }
        return nil
    }

    /// ASCII lower-case of one byte.
    @inline(__always)
    static func lower(_ byte: UInt8) -> UInt8 {
        byte &- 0x41 < 26 ? byte | 0x20 : byte
    }

    /// Whether `bytes[range]` equals the lower-case ASCII literal `lowercase`, ignoring case.
    @inline(__always)
    static func equalsIgnoringCase(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ lowercase: StaticString) -> Bool {
        let count = lowercase.utf8CodeUnitCount
        guard range.count == count else { return false }
        let literal = lowercase.utf8Start
        var index = 0
        while index < count {
            if lower(bytes[range.lowerBound + index]) != literal[index] { return false }
            index += 1
        }
        return true
    }

    /// Whether `bytes[range]` equals `literal` exactly (case matters: methods, versions).
    @inline(__always)
    static func equalsExactly(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ literal: StaticString) -> Bool {
        let count = literal.utf8CodeUnitCount
        guard range.count == count else { return false }
        let start = literal.utf8Start
        var index = 0
        while index < count {
            if bytes[range.lowerBound + index] != start[index] { return false }
            index += 1
        }
        return true
    }

    /// `range` less leading and trailing OWS.
    @inline(__always)
    static func trimmed(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Range<Int> {
        var start = range.lowerBound
        var end = range.upperBound
        while start < end, isWhitespace(bytes[start]) { start += 1 }
        while end > start, isWhitespace(bytes[end - 1]) { end -= 1 }
        return start..<end
    }

    /// The kind of a field by its name (any case): the fields the proxy acts on, `.other` for the
    /// rest. The name is known to be tchar only.
    static func kind(ofName bytes: UnsafeRawBufferPointer, _ name: Range<Int>) -> HTTP1FieldKind {
        // By length first, then by the first letter: most names are settled by two comparisons.
        switch name.count {
        case 2:
            return equalsIgnoringCase(bytes, name, "te") ? .te : .other
        case 4:
            return equalsIgnoringCase(bytes, name, "host") ? .host : .other
        case 6:
            return equalsIgnoringCase(bytes, name, "expect") ? .expect : .other
        case 7:
            switch lower(bytes[name.lowerBound]) {
            case UInt8(ascii: "t"): return equalsIgnoringCase(bytes, name, "trailer") ? .trailer : .other
            case UInt8(ascii: "u"): return equalsIgnoringCase(bytes, name, "upgrade") ? .upgrade : .other
            default: return .other
            }
        case 10:
            switch lower(bytes[name.lowerBound]) {
            case UInt8(ascii: "c"): return equalsIgnoringCase(bytes, name, "connection") ? .connection : .other
            case UInt8(ascii: "k"): return equalsIgnoringCase(bytes, name, "keep-alive") ? .keepAlive : .other
            default: return .other
            }
        case 12:
            return equalsIgnoringCase(bytes, name, "x-request-id") ? .xRequestID : .other
        case 14:
            return equalsIgnoringCase(bytes, name, "content-length") ? .contentLength : .other
        case 15:
            return equalsIgnoringCase(bytes, name, "x-forwarded-for") ? .xForwardedFor : .other
        case 16:
            switch lower(bytes[name.lowerBound]) {
            case UInt8(ascii: "p"): return equalsIgnoringCase(bytes, name, "proxy-connection") ? .proxyConnection : .other
            case UInt8(ascii: "x"): return equalsIgnoringCase(bytes, name, "x-forwarded-host") ? .xForwardedHost : .other
            default: return .other
            }
        case 17:
            switch lower(bytes[name.lowerBound]) {
            case UInt8(ascii: "t"): return equalsIgnoringCase(bytes, name, "transfer-encoding") ? .transferEncoding : .other
            case UInt8(ascii: "x"): return equalsIgnoringCase(bytes, name, "x-forwarded-proto") ? .xForwardedProto : .other
            default: return .other
            }
        case 18:
            return equalsIgnoringCase(bytes, name, "proxy-authenticate") ? .proxyAuthenticate : .other
        case 19:
            return equalsIgnoringCase(bytes, name, "proxy-authorization") ? .proxyAuthorization : .other
        default:
            return .other
        }
    }

    /// The longest name `kind(ofName:)` knows ("proxy-authorization").
    static let longestKnownName = 19
}

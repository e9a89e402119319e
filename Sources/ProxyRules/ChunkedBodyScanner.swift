/// Follows a chunked body (RFC 9112 7.1) as it passes through verbatim: finds its end, counts its
/// payload and tells where the payload bytes are, without decoding anything into a new buffer.
///
/// Its rules, stricter than RFC 9112 where that is a choice and never laxer than llhttp:
/// - chunk-size: 1*HEXDIG (no sign, no `0x`, no whitespace), that fits an Int;
/// - chunk-ext: `;name` or `;name=value` with a token name and a token or quoted-string value,
///   ASCII only, no whitespace around `;` or `=` (RFC 9112's BWS is refused);
/// - CRLF only, after the size line, after each chunk's data (exactly), after each trailer field
///   and at the end;
/// - trailer fields follow the head's field rules (token name straight before `:`, value bytes
///   VCHAR/obs-text/SP/HTAB, no obs-fold), and a field the proxy acts on in a head (framing,
///   Host, Connection and the other hop-by-hop fields, X-Forwarded-*, X-Request-Id) is refused
///   in a trailer, where no recipient may take it as a header (RFC 9110 6.5.1);
/// - a size line longer than `maxChunkLineBytes` is 400, a trailer section longer than
///   `maxTrailerBytes` 431.
public struct ChunkedBodyScanner: Sendable {
    private enum State: UInt8, Sendable {
        case size, extensionStart, extensionName, extensionValueStart, extensionToken
        case extensionQuoted, extensionQuotedPair, extensionAfterQuote, sizeLF
        case data, dataCR, dataLF
        case trailerLineStart, trailerName, trailerValue, trailerLF, endLF
        case done, failed
    }

    private let maxChunkLineBytes: Int
    private let maxTrailerBytes: Int
    private var state = State.size
    private var chunkSize = 0
    private var sizeDigits = 0
    private var lineBytes = 0
    private var remaining = 0
    private var trailerBytes = 0
    /// The lower-cased start of the trailer field name being read: enough to tell the kinds
    /// `HTTP1Syntax.kind(ofName:)` knows (at most 19 bytes) from the others.
    private var name: (UInt64, UInt64, UInt64) = (0, 0, 0)
    private var nameLength = 0
    private var error: HTTP1ScanError?

    /// The chunk payload bytes scanned so far (those passed to `data`).
    public private(set) var payloadBytes = 0
    /// Whether the last chunk and the trailer section (and its empty line) have been read.
    public var isFinished: Bool { state == .done }
    /// Whether the trailer section had fields.
    public private(set) var hasTrailers = false

    public init(maxChunkLineBytes: Int = 4096, maxTrailerBytes: Int = 16384) {
        self.maxChunkLineBytes = maxChunkLineBytes
        self.maxTrailerBytes = maxTrailerBytes
    }

    /// Consumes `bytes` up to the end of the body at most; `data` is called with the ranges
    /// (offsets into `bytes`) of chunk payload bytes, so a caller can count them or, for an
    /// HTTP/1.0 peer, forward only them. Everything before `consumed` is part of the body; the
    /// bytes after it (when `finished`) are the next message's. Once it fails it keeps failing.
    public mutating func scan(
        _ bytes: UnsafeRawBufferPointer, data: (Range<Int>) -> Void
    ) -> Result<(consumed: Int, finished: Bool), HTTP1ScanError> {
        if let error { return .failure(error) }
        var index = 0
        let count = bytes.count
        while index < count {
            switch state {
            case .data:
                let take = min(remaining, count - index)
                data(index..<(index + take))
                payloadBytes &+= take
                remaining -= take
                index += take
                if remaining == 0 { state = .dataCR }
                continue
            case .done:
                return .success((index, true))
            case .failed:
                return .failure(error ?? .badRequest("invalid chunked body"))
            default:
                break
            }
            let byte = bytes[index]
            index += 1
            if let failure = step(byte) {
                state = .failed
                error = failure
                return .failure(failure)
            }
            if state == .done { return .success((index, true)) }
        }
        return .success((index, state == .done))
    }

    /// One byte outside chunk data.
    private mutating func step(_ byte: UInt8) -> HTTP1ScanError? {
        switch state {
        case .size, .extensionStart, .extensionName, .extensionValueStart, .extensionToken,
            .extensionQuoted, .extensionQuotedPair, .extensionAfterQuote:
            lineBytes += 1
            if lineBytes > maxChunkLineBytes { return .badRequest("chunk size line longer than \(maxChunkLineBytes) bytes") }
            return sizeLine(byte)
        case .sizeLF:
            guard byte == HTTP1Syntax.lf else { return .badRequest("CR without LF after a chunk size") }
            if chunkSize == 0 {
                state = .trailerLineStart
            } else {
                remaining = chunkSize
                state = .data
            }
            chunkSize = 0
            sizeDigits = 0
            lineBytes = 0
            return nil
        case .dataCR:
            guard byte == HTTP1Syntax.cr else { return .badRequest("chunk data not followed by CRLF") }
            state = .dataLF
            return nil
        case .dataLF:
            guard byte == HTTP1Syntax.lf else { return .badRequest("chunk data not followed by CRLF") }
            state = .size
            return nil
        case .trailerLineStart, .trailerName, .trailerValue, .trailerLF, .endLF:
            trailerBytes += 1
            if trailerBytes > maxTrailerBytes { return HTTP1ScanError(status: 431, reason: "trailer section larger than \(maxTrailerBytes) bytes") }
            return trailer(byte)
        case .data, .done, .failed:
            return nil  // handled by `scan`
        }
    }

    /// chunk-size [ chunk-ext ] CR
    private mutating func sizeLine(_ byte: UInt8) -> HTTP1ScanError? {
        switch state {
        case .size:
            if let digit = HTTP1Syntax.hexValue(byte) {
                guard chunkSize <= (Int.max - digit) >> 4 else { return .badRequest("chunk size too large") }
                chunkSize = chunkSize << 4 | digit
                sizeDigits += 1
                return nil
            }
            guard sizeDigits > 0 else { return .badRequest("invalid chunk size") }
            if byte == HTTP1Syntax.semicolon {
                state = .extensionStart
            } else if byte == HTTP1Syntax.cr {
                state = .sizeLF
            } else {
                return .badRequest("invalid chunk size")
            }
        case .extensionStart:
            guard HTTP1Syntax.isTchar(byte) else { return .badRequest("invalid chunk extension") }
            state = .extensionName
        case .extensionName:
            if HTTP1Syntax.isTchar(byte) { return nil }
            return afterExtension(byte, allowEquals: true)
        case .extensionValueStart:
            if byte == HTTP1Syntax.quote {
                state = .extensionQuoted
            } else if HTTP1Syntax.isTchar(byte) {
                state = .extensionToken
            } else {
                return .badRequest("invalid chunk extension value")
            }
        case .extensionToken:
            if HTTP1Syntax.isTchar(byte) { return nil }
            return afterExtension(byte, allowEquals: false)
        case .extensionQuoted:
            if byte == HTTP1Syntax.quote {
                state = .extensionAfterQuote
            } else if byte == HTTP1Syntax.backslash {
                state = .extensionQuotedPair
            } else if !HTTP1Syntax.isQuotedTextByte(byte) {
                return .badRequest("invalid character in a chunk extension value")
            }
        case .extensionQuotedPair:
            guard HTTP1Syntax.isQuotedPairByte(byte) else { return .badRequest("invalid quoted-pair in a chunk extension value") }
            state = .extensionQuoted
        case .extensionAfterQuote:
            return afterExtension(byte, allowEquals: false)
        default:
            break
        }
        return nil
    }

    /// After an extension's name or value: another extension, `=` (after a name), or the end.
    private mutating func afterExtension(_ byte: UInt8, allowEquals: Bool) -> HTTP1ScanError? {
        if byte == HTTP1Syntax.semicolon {
            state = .extensionStart
        } else if byte == HTTP1Syntax.cr {
            state = .sizeLF
        } else if allowEquals, byte == HTTP1Syntax.equals {
            state = .extensionValueStart
        } else {
            return .badRequest("invalid chunk extension")
        }
        return nil
    }

    /// trailer-section CRLF, byte by byte.
    private mutating func trailer(_ byte: UInt8) -> HTTP1ScanError? {
        switch state {
        case .trailerLineStart:
            if byte == HTTP1Syntax.cr {
                state = .endLF
            } else if HTTP1Syntax.isTchar(byte) {
                name = (0, 0, 0)
                nameLength = 0
                appendNameByte(byte)
                state = .trailerName
            } else if HTTP1Syntax.isWhitespace(byte) {
                return .badRequest("whitespace or obsolete line folding in the trailer section")
            } else {
                return .badRequest(byte == HTTP1Syntax.lf ? "bare LF in the trailer section" : "invalid character in a trailer field name")
            }
        case .trailerName:
            if HTTP1Syntax.isTchar(byte) {
                appendNameByte(byte)
            } else if byte == HTTP1Syntax.colon {
                var kind = HTTP1FieldKind.other
                if nameLength <= HTTP1Syntax.longestKnownName {
                    // Byte k of the name is bits 8k of the tuple's words: little-endian memory.
                    var copy = (name.0.littleEndian, name.1.littleEndian, name.2.littleEndian)
                    let length = nameLength
                    kind = withUnsafeBytes(of: &copy) { HTTP1Syntax.kind(ofName: $0, 0..<length) }
                }
                guard kind == .other else { return .badRequest("a field the proxy acts on in the trailer section") }
                state = .trailerValue
            } else {
                return .badRequest(
                    HTTP1Syntax.isWhitespace(byte) ? "whitespace in or after a trailer field name" : "invalid character in a trailer field name")
            }
        case .trailerValue:
            if byte == HTTP1Syntax.cr {
                state = .trailerLF
            } else if !HTTP1Syntax.isFieldValueByte(byte) {
                return .badRequest(byte == HTTP1Syntax.lf ? "bare LF in the trailer section" : "invalid character in a trailer field value")
            }
        case .trailerLF:
            guard byte == HTTP1Syntax.lf else { return .badRequest("CR without LF in the trailer section") }
            hasTrailers = true
            state = .trailerLineStart
        case .endLF:
            guard byte == HTTP1Syntax.lf else { return .badRequest("CR without LF at the end of a chunked body") }
            state = .done
        default:
            break
        }
        return nil
    }

    private mutating func appendNameByte(_ byte: UInt8) {
        defer { nameLength += 1 }
        guard nameLength < 24 else { return }
        let shift = UInt64((nameLength % 8) * 8)
        let folded = UInt64(HTTP1Syntax.lower(byte)) << shift
        switch nameLength / 8 {
        case 0: name.0 |= folded
        case 1: name.1 |= folded
        default: name.2 |= folded
        }
    }
}

/// The fields of an HTTP/1.x head the proxy acts on; every other field is `.other` and is
/// forwarded as the bytes of its line.
public enum HTTP1FieldKind: UInt8, Sendable {
    case other, host, contentLength, transferEncoding, connection, upgrade, expect, te, trailer, keepAlive
    case proxyConnection, proxyAuthenticate, proxyAuthorization, xForwardedFor, xForwardedHost, xForwardedProto
    case xRequestID
}

/// One field line of a scanned head, as offsets into the scanned bytes.
public struct HTTP1Field: Sendable, Equatable {
    public var kind: HTTP1FieldKind
    /// The field name (as written: any case).
    public var name: Range<Int>
    /// The field value without leading and trailing OWS (SP/HTAB); empty for an empty value.
    public var value: Range<Int>
    /// The whole field line including its CRLF: what is copied when the field is forwarded.
    public var line: Range<Int>

    public init(kind: HTTP1FieldKind, name: Range<Int>, value: Range<Int>, line: Range<Int>) {
        self.kind = kind
        self.name = name
        self.value = value
        self.line = line
    }
}

/// How the body after a head is delimited (RFC 9112 6.3).
public enum HTTP1BodyFraming: Equatable, Sendable {
    /// No body: the next message starts right after the head.
    case none
    /// Exactly this many bytes.
    case length(Int)
    /// The chunked transfer coding (`ChunkedBodyScanner` finds its end).
    case chunked
    /// Everything until the connection closes (responses only).
    case untilClose
}

/// Why a head or chunked body is refused, with the status a server answers: 400, 431 (a head
/// larger than allowed), 501 (a transfer coding other than chunked), 505 (an HTTP version other
/// than 1.0 and 1.1). For a response the caller answers its own client 502 whatever the status.
public struct HTTP1ScanError: Error, Equatable, Sendable {
    public var status: Int
    public var reason: String

    public init(status: Int, reason: String) {
        self.status = status
        self.reason = reason
    }

    static func badRequest(_ reason: String) -> HTTP1ScanError {
        HTTP1ScanError(status: 400, reason: reason)
    }
}

public enum HTTP1ScanResult<Head: Sendable>: Sendable {
    /// The bytes end before the head does (and are not yet more than the limit): scan again from
    /// the start with more.
    case incomplete
    case complete(Head)
    case invalid(HTTP1ScanError)
}

extension HTTP1ScanResult: Equatable where Head: Equatable {}

/// What the `Connection` field(s) say.
public struct HTTP1Connection: Sendable, Equatable {
    public var close = false
    public var keepAlive = false
    public var upgrade = false
    /// `Connection` lists other tokens: field names that are hop-by-hop for this message, to be
    /// dropped when forwarding.
    public var nominatesOthers = false

    public init(close: Bool = false, keepAlive: Bool = false, upgrade: Bool = false, nominatesOthers: Bool = false) {
        self.close = close
        self.keepAlive = keepAlive
        self.upgrade = upgrade
        self.nominatesOthers = nominatesOthers
    }
}

public struct HTTP1RequestHead: Sendable, Equatable {
    public var method: Range<Int>
    public var target: Range<Int>
    /// 0 or 1 (HTTP/1.0 or HTTP/1.1).
    public var minorVersion: UInt8
    /// The bytes of the head, from the start of the scanned bytes to the end of the empty line,
    /// empty lines skipped before the request line included: the body starts here.
    public var length: Int
    /// The bytes of the empty lines (CRLF each) skipped before the request line (RFC 9112 2.2),
    /// counted in `length`; the request line starts here.
    public var leadingEmptyLines: Int
    /// `.none`, `.length(n)` with n > 0, or `.chunked`; never `.untilClose`.
    public var framing: HTTP1BodyFraming
    public var connection: HTTP1Connection
    /// The value of the one Host field (two are refused).
    public var host: Range<Int>?
    /// An `Expect: 100-continue` (any case).
    public var expectContinue: Bool
    /// The value of the Upgrade field (two are refused).
    public var upgrade: Range<Int>?
    /// The value of the first X-Request-Id field.
    public var requestID: Range<Int>?
    /// The fields appended to `fields` by this scan.
    public var fieldCount: Int
}

public struct HTTP1ResponseHead: Sendable, Equatable {
    public var status: Int
    /// 0 or 1.
    public var minorVersion: UInt8
    /// The reason phrase (may be empty).
    public var reason: Range<Int>
    /// The bytes of the head including the empty line: the body starts here.
    public var length: Int
    /// From the fields alone: `.length(n)` (also 0), `.chunked`, or `.untilClose` when neither
    /// field is there (or the last coding is not chunked). The caller applies the rules of
    /// HEAD, CONNECT, 1xx, 204 and 304, which have no body whatever the fields say.
    public var framing: HTTP1BodyFraming
    public var connection: HTTP1Connection
    /// The value of the Upgrade field (two are refused).
    public var upgrade: Range<Int>?
    public var fieldCount: Int
}

/// Finds everything the proxy needs of an HTTP/1.x head in one pass over its bytes: framing,
/// Connection, Host, Expect, Upgrade, X-Request-Id, and the range of every field line (copied as
/// bytes when forwarded). Nothing is decoded into Strings and nothing is allocated but the
/// growth of the caller's `fields`.
///
/// Request smuggling lives in the difference between two parsers' reading of one message, so
/// where RFC 9112 lets a recipient choose, the scanner refuses: bare CR or LF, obs-fold,
/// whitespace before a colon or the first field, any Content-Length but one plain number (two
/// equal ones included), Content-Length beside Transfer-Encoding, a Transfer-Encoding in an
/// HTTP/1.0 message, a coding applied after chunked or chunked twice, empty list elements in
/// Transfer-Encoding, two Host or two Upgrade fields, framing on a CONNECT request, and the
/// method PRI (HTTP/2's preface).
/// `Fuzz/HeadScannerOracle` checks it against NIO's parser (llhttp): whatever the scanner
/// accepts, llhttp reads the same way.
///
/// The scan is stateless: with `.incomplete`, scan the same bytes again, from the start, once
/// more have arrived (the head is bounded by `maxHeadBytes`).
public enum HTTP1HeadScanner {
    /// Whether `bytes`, searched from `start` (less two, for an end split across reads), hold
    /// `\n\n` or `\n\r\n`: a head's end, or a bare-LF one the scanner refuses. The scans are
    /// stateless, so a head arriving in pieces is scanned again from its start: callers scan only
    /// once this says the end may be there (or the bytes pass the limit), or a client sending a
    /// byte at a time would make the work quadratic in the head's size.
    public static func mayHoldEnd(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Bool {
        var index = max(0, start - 2)
        while index < bytes.count {
            guard let lf = bytes[index...].firstIndex(of: 0x0A) else { return false }
            if lf + 1 < bytes.count, bytes[lf + 1] == 0x0A { return true }
            if lf + 2 < bytes.count, bytes[lf + 1] == 0x0D, bytes[lf + 2] == 0x0A { return true }
            if lf + 2 >= bytes.count { return false }
            index = lf + 1
        }
        return false
    }

    /// Scans a request head from the start of `bytes`; appends its fields to `fields` (which the
    /// caller clears and reuses) when the head is complete, and leaves `fields` as it was
    /// otherwise.
    public static func scanRequest(
        _ bytes: UnsafeRawBufferPointer, maxHeadBytes: Int, fields: inout [HTTP1Field]
    ) -> HTTP1ScanResult<HTTP1RequestHead> {
        let before = fields.count
        let result = requestHead(bytes, maxHeadBytes: maxHeadBytes, fields: &fields)
        if case .complete = result {} else if fields.count > before { fields.removeLast(fields.count - before) }
        return result
    }

    /// Scans a response head from the start of `bytes`, like `scanRequest`.
    public static func scanResponse(
        _ bytes: UnsafeRawBufferPointer, maxHeadBytes: Int, fields: inout [HTTP1Field]
    ) -> HTTP1ScanResult<HTTP1ResponseHead> {
        let before = fields.count
        let result = responseHead(bytes, maxHeadBytes: maxHeadBytes, fields: &fields)
        if case .complete = result {} else if fields.count > before { fields.removeLast(fields.count - before) }
        return result
    }

    // MARK: Request

    private static func requestHead(
        _ bytes: UnsafeRawBufferPointer, maxHeadBytes: Int, fields: inout [HTTP1Field]
    ) -> HTTP1ScanResult<HTTP1RequestHead> {
        let limit = min(bytes.count, max(maxHeadBytes, 0))
        // Past `limit` with the head not ended: too large once more than the limit is there.
        // (A literal reason: a String built here would be an allocation per scan.)
        let short: HTTP1ScanResult<HTTP1RequestHead> =
            bytes.count > limit ? .invalid(HTTP1ScanError(status: 431, reason: "request head larger than the limit")) : .incomplete

        // Empty lines before the request line (RFC 9112 2.2): CRLF only.
        var index = 0
        while true {
            guard index < limit else { return short }
            let byte = bytes[index]
            if byte == HTTP1Syntax.cr {
                guard index + 1 < limit else { return short }
                guard bytes[index + 1] == HTTP1Syntax.lf else { return .invalid(.badRequest("CR without LF before the request line")) }
                index += 2
            } else if byte == HTTP1Syntax.lf {
                return .invalid(.badRequest("bare LF before the request line"))
            } else {
                break
            }
        }
        let leading = index

        // method SP
        let methodStart = index
        while true {
            guard index < limit else { return short }
            let byte = bytes[index]
            if byte == HTTP1Syntax.sp { break }
            guard HTTP1Syntax.isTchar(byte) else { return .invalid(.badRequest("invalid character in the method")) }
            index += 1
        }
        guard index > methodStart else { return .invalid(.badRequest("empty method")) }
        let method = methodStart..<index
        // PRI is HTTP/2's connection preface ("PRI * HTTP/2.0"), never an HTTP/1.x method:
        // llhttp stops at it, so no reader agrees on what follows.
        if HTTP1Syntax.equalsExactly(bytes, method, "PRI") {
            return .invalid(.badRequest("the PRI method (the HTTP/2 connection preface)"))
        }
        index += 1

        // request-target SP
        let targetStart = index
        while true {
            index = HTTP1Syntax.skipTargetBytes(bytes, from: index, limit: limit)
            guard index < limit else { return short }
            let byte = bytes[index]
            if byte == HTTP1Syntax.sp { break }
            guard HTTP1Syntax.isTargetByte(byte) else { return .invalid(.badRequest("invalid character in the request target")) }
            index += 1
        }
        guard index > targetStart else { return .invalid(.badRequest("empty request target")) }
        let target = targetStart..<index
        index += 1

        // HTTP-version CRLF
        let minor: UInt8
        switch version(bytes, at: &index, limit: limit, thenCRLF: true) {
        case .short: return short
        case .invalid(let error): return .invalid(error)
        case .version(let value): minor = value
        }

        var state = FieldState(isRequest: true)
        let length: Int
        switch scanFields(bytes, from: index, limit: limit, fields: &fields, state: &state) {
        case .short: return short
        case .invalid(let error): return .invalid(error)
        case .end(let end): length = end
        }

        // Framing (RFC 9112 6.1, 6.3).
        var framing = HTTP1BodyFraming.none
        if state.codings > 0 {
            if state.contentLength != nil {
                return .invalid(.badRequest("Content-Length together with Transfer-Encoding"))
            }
            if minor == 0 {
                return .invalid(.badRequest("Transfer-Encoding in an HTTP/1.0 request"))
            }
            if !state.lastCodingIsChunked {
                return .invalid(.badRequest("chunked is not the final transfer coding"))
            }
            if state.chunkedCodings > 1 {
                return .invalid(.badRequest("chunked is applied more than once"))
            }
            if state.codings > 1, let other = state.firstOtherCoding {
                let name = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[other]), as: UTF8.self)
                return .invalid(HTTP1ScanError(status: 501, reason: "transfer coding \(name) is not supported; only chunked is"))
            }
            framing = .chunked
        } else if let count = state.contentLength, count > 0 {
            framing = .length(count)
        }
        // A CONNECT request has no content (RFC 9110 9.3.6): a body would be tunnel bytes to one
        // reader and a body to another.
        if framing != .none, HTTP1Syntax.equalsExactly(bytes, method, "CONNECT") {
            return .invalid(.badRequest("a CONNECT request with a body"))
        }

        return .complete(HTTP1RequestHead(
            method: method, target: target, minorVersion: minor, length: length, leadingEmptyLines: leading,
            framing: framing, connection: state.connection, host: state.host, expectContinue: state.expectContinue,
            upgrade: state.upgrade, requestID: state.requestID, fieldCount: state.fieldCount))
    }

    // MARK: Response

    private static func responseHead(
        _ bytes: UnsafeRawBufferPointer, maxHeadBytes: Int, fields: inout [HTTP1Field]
    ) -> HTTP1ScanResult<HTTP1ResponseHead> {
        let limit = min(bytes.count, max(maxHeadBytes, 0))
        let short: HTTP1ScanResult<HTTP1ResponseHead> =
            bytes.count > limit ? .invalid(HTTP1ScanError(status: 431, reason: "response head larger than the limit")) : .incomplete

        // HTTP-version SP status-code [SP reason-phrase] CRLF. No empty lines are skipped before
        // a status line: a server sends none (the leniency is for requests, RFC 9112 2.2).
        var index = 0
        let minor: UInt8
        switch version(bytes, at: &index, limit: limit, thenCRLF: false) {
        case .short: return short
        case .invalid(let error): return .invalid(error)
        case .version(let value): minor = value
        }
        guard index < limit else { return short }
        guard bytes[index] == HTTP1Syntax.sp else { return .invalid(.badRequest("no space after the version")) }
        index += 1
        var status = 0
        for position in 0..<3 {
            guard index < limit else { return short }
            let byte = bytes[index]
            guard HTTP1Syntax.isDigit(byte), position > 0 || byte != UInt8(ascii: "0") else {
                return .invalid(.badRequest("invalid status code"))
            }
            status = status * 10 + Int(byte &- 0x30)
            index += 1
        }
        guard index < limit else { return short }
        var reason = index..<index
        if bytes[index] == HTTP1Syntax.sp {
            index += 1
            let reasonStart = index
            while true {
                guard index < limit else { return short }
                let byte = bytes[index]
                if byte == HTTP1Syntax.cr { break }
                guard HTTP1Syntax.isFieldValueByte(byte) else { return .invalid(.badRequest("invalid character in the reason phrase")) }
                index += 1
            }
            reason = reasonStart..<index
        }
        // The reason may be left out with its space ("HTTP/1.1 200\r\n"): no reader can take it
        // another way.
        guard bytes[index] == HTTP1Syntax.cr else { return .invalid(.badRequest("invalid status line")) }
        guard index + 1 < limit else { return short }
        guard bytes[index + 1] == HTTP1Syntax.lf else { return .invalid(.badRequest("CR without LF in the status line")) }
        index += 2

        var state = FieldState(isRequest: false)
        let length: Int
        switch scanFields(bytes, from: index, limit: limit, fields: &fields, state: &state) {
        case .short: return short
        case .invalid(let error): return .invalid(error)
        case .end(let end): length = end
        }

        let framing: HTTP1BodyFraming
        if state.codings > 0 {
            // RFC 9112 6.3 lets Transfer-Encoding override Content-Length in a response, but a
            // server that sends both is broken or hostile: refused, like llhttp does.
            if state.contentLength != nil {
                return .invalid(.badRequest("Content-Length together with Transfer-Encoding"))
            }
            if minor == 0 {
                return .invalid(.badRequest("Transfer-Encoding in an HTTP/1.0 response"))
            }
            if state.chunkedCodings > 1 {
                return .invalid(.badRequest("chunked is applied more than once"))
            }
            framing = state.lastCodingIsChunked ? .chunked : .untilClose
        } else if let count = state.contentLength {
            framing = .length(count)
        } else {
            framing = .untilClose
        }
        return .complete(HTTP1ResponseHead(
            status: status, minorVersion: minor, reason: reason, length: length, framing: framing,
            connection: state.connection, upgrade: state.upgrade, fieldCount: state.fieldCount))
    }

    // MARK: Version

    private enum VersionOutcome {
        case short
        case invalid(HTTP1ScanError)
        case version(UInt8)
    }

    /// `HTTP/1.0` or `HTTP/1.1` at `index`, and CRLF after it when `thenCRLF`; another
    /// `HTTP/DIGIT.DIGIT` is 505, anything else 400.
    @inline(__always)
    private static func version(
        _ bytes: UnsafeRawBufferPointer, at index: inout Int, limit: Int, thenCRLF: Bool
    ) -> VersionOutcome {
        let prefix: StaticString = "HTTP/"
        let start = prefix.utf8Start
        for offset in 0..<5 {
            guard index + offset < limit else { return .short }
            guard bytes[index + offset] == start[offset] else { return .invalid(.badRequest("invalid HTTP version")) }
        }
        guard index + 7 < limit else {
            // Check what is there already, so garbage is refused as soon as it is seen.
            if index + 5 < limit, !HTTP1Syntax.isDigit(bytes[index + 5]) { return .invalid(.badRequest("invalid HTTP version")) }
            if index + 6 < limit, bytes[index + 6] != UInt8(ascii: ".") { return .invalid(.badRequest("invalid HTTP version")) }
            return .short
        }
        let major = bytes[index + 5]
        let minor = bytes[index + 7]
        guard HTTP1Syntax.isDigit(major), bytes[index + 6] == UInt8(ascii: "."), HTTP1Syntax.isDigit(minor) else {
            return .invalid(.badRequest("invalid HTTP version"))
        }
        index += 8
        if thenCRLF {
            guard index < limit else { return .short }
            guard bytes[index] == HTTP1Syntax.cr else { return .invalid(.badRequest("invalid request line")) }
            guard index + 1 < limit else { return .short }
            guard bytes[index + 1] == HTTP1Syntax.lf else { return .invalid(.badRequest("CR without LF in the request line")) }
        }
        guard major == UInt8(ascii: "1"), minor == UInt8(ascii: "0") || minor == UInt8(ascii: "1") else {
            return .invalid(HTTP1ScanError(status: 505, reason: "HTTP version not supported"))
        }
        if thenCRLF { index += 2 }
        return .version(minor &- 0x30)
    }

    // MARK: Fields

    /// What the fields said, gathered as they are scanned.
    private struct FieldState {
        let isRequest: Bool
        var fieldCount = 0
        var host: Range<Int>?
        var contentLength: Int?
        var connection = HTTP1Connection()
        var upgrade: Range<Int>?
        var expectContinue = false
        var requestID: Range<Int>?
        /// Transfer codings over all Transfer-Encoding fields.
        var codings = 0
        var chunkedCodings = 0
        var lastCodingIsChunked = false
        var firstOtherCoding: Range<Int>?

        init(isRequest: Bool) {
            self.isRequest = isRequest
        }
    }

    private enum FieldsOutcome {
        case short
        case invalid(HTTP1ScanError)
        /// The offset just after the empty line.
        case end(Int)
    }

    /// The field lines from `start` to the empty line that ends the head.
    private static func scanFields(
        _ bytes: UnsafeRawBufferPointer, from start: Int, limit: Int, fields: inout [HTTP1Field], state: inout FieldState
    ) -> FieldsOutcome {
        var index = start
        while true {
            guard index < limit else { return .short }
            let lineStart = index
            let first = bytes[index]
            if first == HTTP1Syntax.cr {
                guard index + 1 < limit else { return .short }
                guard bytes[index + 1] == HTTP1Syntax.lf else { return .invalid(.badRequest("CR without LF at the end of the head")) }
                return .end(index + 2)
            }
            if first == HTTP1Syntax.lf { return .invalid(.badRequest("bare LF in the head")) }
            if HTTP1Syntax.isWhitespace(first) {
                return .invalid(.badRequest(
                    lineStart == start ? "whitespace before the first field" : "obsolete line folding"))
            }

            // field-name ":"
            while true {
                guard index < limit else { return .short }
                let byte = bytes[index]
                if byte == HTTP1Syntax.colon { break }
                guard HTTP1Syntax.isTchar(byte) else {
                    return .invalid(.badRequest(
                        HTTP1Syntax.isWhitespace(byte) ? "whitespace in or after a field name" : "invalid character in a field name"))
                }
                index += 1
            }
            let name = lineStart..<index
            guard !name.isEmpty else { return .invalid(.badRequest("empty field name")) }
            index += 1

            // field-value CRLF
            let valueStart = index
            while true {
                index = HTTP1Syntax.skipValueBytes(bytes, from: index, limit: limit)
                guard index < limit else { return .short }
                let byte = bytes[index]
                if byte == HTTP1Syntax.cr { break }
                guard HTTP1Syntax.isFieldValueByte(byte) else {
                    return .invalid(.badRequest(byte == HTTP1Syntax.lf ? "bare LF in a field" : "invalid character in a field value"))
                }
                index += 1
            }
            guard index + 1 < limit else { return .short }
            guard bytes[index + 1] == HTTP1Syntax.lf else { return .invalid(.badRequest("CR without LF in a field")) }
            let value = HTTP1Syntax.trimmed(bytes, valueStart..<index)
            index += 2

            let kind = HTTP1Syntax.kind(ofName: bytes, name)
            if kind != .other, let error = interpret(kind, bytes, value, rawEnd: index - 2, &state) { return .invalid(error) }
            fields.append(HTTP1Field(kind: kind, name: name, value: value, line: lineStart..<index))
            state.fieldCount += 1
        }
    }

    /// Takes in one field the proxy acts on; an error refuses the head.
    private static func interpret(
        _ kind: HTTP1FieldKind, _ bytes: UnsafeRawBufferPointer, _ value: Range<Int>, rawEnd: Int, _ state: inout FieldState
    ) -> HTTP1ScanError? {
        // A framing field holds no HTAB but in its leading OWS: llhttp reads `chunked<HTAB>` as
        // another coding (a response then runs to the close) and refuses `5<HTAB>`, so any HTAB
        // after the value starts is refused rather than trimmed.
        if kind == .contentLength || kind == .transferEncoding {
            var position = value.lowerBound
            while position < rawEnd {
                if bytes[position] == HTTP1Syntax.htab { return .badRequest("HTAB in a framing field") }
                position += 1
            }
        }
        switch kind {
        case .host:
            guard state.isRequest else { return nil }
            guard state.host == nil else { return .badRequest("more than one Host field") }
            state.host = value
        case .contentLength:
            // 1*DIGIT, once. A list ("5, 5") and a second field, even an equal one, are refused:
            // RFC 9112 6.3 allows either, and llhttp refuses both.
            guard state.contentLength == nil else { return .badRequest("more than one Content-Length field") }
            guard !value.isEmpty else { return .badRequest("empty Content-Length") }
            var count = 0
            for position in value {
                let byte = bytes[position]
                guard HTTP1Syntax.isDigit(byte) else { return .badRequest("invalid Content-Length") }
                let (times10, overflow1) = count.multipliedReportingOverflow(by: 10)
                let (sum, overflow2) = times10.addingReportingOverflow(Int(byte &- 0x30))
                guard !overflow1, !overflow2 else { return .badRequest("Content-Length too large") }
                count = sum
            }
            state.contentLength = count
        case .transferEncoding:
            var elementStart = value.lowerBound
            var position = value.lowerBound
            while true {
                if position == value.upperBound || bytes[position] == HTTP1Syntax.comma {
                    let element = HTTP1Syntax.trimmed(bytes, elementStart..<position)
                    guard !element.isEmpty else { return .badRequest("empty transfer coding") }
                    state.codings += 1
                    if HTTP1Syntax.equalsIgnoringCase(bytes, element, "chunked") {
                        state.chunkedCodings += 1
                        state.lastCodingIsChunked = true
                    } else {
                        state.lastCodingIsChunked = false
                        if state.firstOtherCoding == nil { state.firstOtherCoding = element }
                    }
                    if position == value.upperBound { break }
                    elementStart = position + 1
                }
                position += 1
            }
        case .connection:
            var elementStart = value.lowerBound
            var position = value.lowerBound
            while true {
                if position == value.upperBound || bytes[position] == HTTP1Syntax.comma {
                    let element = HTTP1Syntax.trimmed(bytes, elementStart..<position)
                    if HTTP1Syntax.equalsIgnoringCase(bytes, element, "close") {
                        state.connection.close = true
                    } else if HTTP1Syntax.equalsIgnoringCase(bytes, element, "keep-alive") {
                        state.connection.keepAlive = true
                    } else if HTTP1Syntax.equalsIgnoringCase(bytes, element, "upgrade") {
                        state.connection.upgrade = true
                    } else if !element.isEmpty {
                        state.connection.nominatesOthers = true
                    }
                    if position == value.upperBound { break }
                    elementStart = position + 1
                }
                position += 1
            }
        case .upgrade:
            guard state.upgrade == nil else { return .badRequest("more than one Upgrade field") }
            state.upgrade = value
        case .expect:
            if state.isRequest, HTTP1Syntax.equalsIgnoringCase(bytes, value, "100-continue") { state.expectContinue = true }
        case .xRequestID:
            if state.isRequest, state.requestID == nil { state.requestID = value }
        default:
            break
        }
        return nil
    }
}

import NIOCore
import NIOEmbedded
import NIOHTTP1
import ProxyRules

/// Differential check of `HTTP1HeadScanner` and `ChunkedBodyScanner` against NIO's decoders
/// (llhttp, as NIO configures it): whatever message the scanners accept, llhttp reads the same
/// way. Request smuggling is two parsers disagreeing on where a message ends, so the one thing
/// checked is that there is no input the scanners accept and llhttp reads differently (or
/// refuses); where the scanners refuse, llhttp may do anything (the scanners are meant to be
/// the stricter).
///
/// For a request the scanners accept (head, and the whole body: `n` bytes, or the chunked body
/// up to its end), llhttp is given exactly those bytes and must give one request with the same
/// method, target, version, fields (names and values) and body bytes, and end it exactly there.
/// Two differences are allowed, and the check goes on past them: llhttp knows a fixed list of
/// methods and a few target forms, and the scanner takes any token method and any visible-ASCII
/// target (the proxy checks the target itself); when llhttp refuses only the request line, it is
/// given the same head behind `GET / HTTP/1.x` instead.
///
/// For a response (to a GET), the same with `HTTPResponseDecoder`: status, version, fields, and
/// the body as the scanners and the proxy's status rules frame it (none for 1xx, 204 and 304; to
/// the end of the input when it is delimited by the close).
public enum HeadScannerOracle {
    /// The head limit the oracle scans with (NIO's limits are larger).
    public static let maxHeadBytes = 16384

    public struct Mismatch: Error, CustomStringConvertible {
        public var input: [UInt8]
        public var what: String
        public var description: String {
            "\(what) for \(String(decoding: input, as: UTF8.self).debugDescription)"
        }
    }

    /// What the scanners made of an input, for statistics and tests.
    public enum Outcome: Equatable, Sendable {
        /// The scanners accepted a message and llhttp read the same one.
        case agreed
        /// Likewise, after the request line was replaced for llhttp (a method or target llhttp refuses).
        case agreedWithRequestLineReplaced
        /// The scanners refused it (llhttp's opinion is not asked).
        case refused(HTTP1ScanError)
        /// The input ends before the message does.
        case incomplete
    }

    /// Both checks: the bytes as a request and as a response.
    public static func check(_ bytes: [UInt8]) -> Mismatch? {
        if case .failure(let mismatch) = checkRequest(bytes) { return mismatch }
        if case .failure(let mismatch) = checkResponse(bytes) { return mismatch }
        return nil
    }

    // MARK: Requests

    public static func checkRequest(_ bytes: [UInt8]) -> Result<Outcome, Mismatch> {
        func mismatch(_ what: String) -> Result<Outcome, Mismatch> { .failure(Mismatch(input: bytes, what: what)) }

        var fields: [HTTP1Field] = []
        let result = bytes.withUnsafeBytes { HTTP1HeadScanner.scanRequest($0, maxHeadBytes: maxHeadBytes, fields: &fields) }
        let head: HTTP1RequestHead
        switch result {
        case .incomplete: return .success(.incomplete)
        case .invalid(let error): return .success(.refused(error))
        case .complete(let complete): head = complete
        }
        if let problem = checkSplits(bytes, head: head, fields: fields) { return mismatch(problem) }

        if head.framing == .untilClose { return mismatch("a request framed until close") }
        let body: [UInt8]
        let end: Int
        switch readBody(bytes, headLength: head.length, framing: head.framing) {
        case .incomplete: return .success(.incomplete)
        case .refused(let error): return .success(.refused(error))
        case .read(let payload, let messageEnd, _):
            body = payload
            end = messageEnd
        }

        let text = { (range: Range<Int>) in String(decoding: bytes[range], as: UTF8.self) }
        let message = Array(bytes[..<end])
        var (parsed, error) = decodeRequest(message)
        var replaced = false
        if parsed.isEmpty, let error, case .invalidMethod = error as? HTTPParserError {
            replaced = true
        } else if parsed.isEmpty, let error, case .invalidURL = error as? HTTPParserError {
            replaced = true
        }
        if replaced {
            // llhttp refuses the request line only: the rest must still read the same.
            let line = Array("GET / HTTP/1.\(head.minorVersion)\r\n".utf8)
            let requestLineEnd = head.target.upperBound + 11  // SP HTTP/1.x CRLF
            (parsed, error) = decodeRequest(line + bytes[requestLineEnd..<end])
        }
        if let error { return mismatch("llhttp refused what the scanner accepted (\(error))") }
        guard parsed.count == 1, let request = parsed.first else { return mismatch("llhttp read \(parsed.count) requests") }
        guard request.ended else { return mismatch("llhttp did not end the request where the scanner did") }
        if !replaced {
            // NIO names llhttp's M-SEARCH "MSEARCH".
            let method = request.head.method == .MSEARCH ? "M-SEARCH" : request.head.method.rawValue
            guard method == text(head.method) else {
                return mismatch("method \(request.head.method.rawValue) vs \(text(head.method))")
            }
            guard request.head.uri == text(head.target) else { return mismatch("target \(request.head.uri) vs \(text(head.target))") }
        }
        guard request.head.version.major == 1, request.head.version.minor == Int(head.minorVersion) else {
            return mismatch("version \(request.head.version) vs 1.\(head.minorVersion)")
        }
        if let problem = compareFields(request.head.headers, fields, bytes) { return mismatch(problem) }
        guard request.body == body else { return mismatch("body of \(request.body.count) bytes vs \(body.count)") }
        return .success(replaced ? .agreedWithRequestLineReplaced : .agreed)
    }

    // MARK: Responses

    public static func checkResponse(_ bytes: [UInt8]) -> Result<Outcome, Mismatch> {
        func mismatch(_ what: String) -> Result<Outcome, Mismatch> { .failure(Mismatch(input: bytes, what: what)) }

        var fields: [HTTP1Field] = []
        let result = bytes.withUnsafeBytes { HTTP1HeadScanner.scanResponse($0, maxHeadBytes: maxHeadBytes, fields: &fields) }
        let head: HTTP1ResponseHead
        switch result {
        case .incomplete: return .success(.incomplete)
        case .invalid(let error): return .success(.refused(error))
        case .complete(let complete): head = complete
        }

        // The proxy's rules for a response to a GET: no body for 1xx, 204 and 304 whatever the
        // fields say; after a 101 the bytes are another protocol's.
        let informational = head.status / 100 == 1
        var framing = head.framing
        if informational || head.status == 204 || head.status == 304 { framing = .none }
        let body: [UInt8]
        let end: Int
        let closes: Bool
        switch readBody(bytes, headLength: head.length, framing: framing) {
        case .incomplete: return .success(.incomplete)
        case .refused(let error): return .success(.refused(error))
        case .read(let payload, let messageEnd, let toClose):
            body = payload
            end = messageEnd
            closes = toClose
        }

        let (parsed, error) = decodeResponse(Array(bytes[..<end]), close: closes)
        if let error { return mismatch("llhttp refused what the scanner accepted (\(error))") }
        guard parsed.count == 1, let response = parsed.first else { return mismatch("llhttp read \(parsed.count) responses") }
        guard response.head.status.code == UInt(head.status) else {
            return mismatch("status \(response.head.status.code) vs \(head.status)")
        }
        guard response.head.version.major == 1, response.head.version.minor == Int(head.minorVersion) else {
            return mismatch("version \(response.head.version) vs 1.\(head.minorVersion)")
        }
        if let problem = compareFields(response.head.headers, fields, bytes) { return mismatch(problem) }
        // NIO ends no informational response (other than 101): its head is all there is.
        if !informational || head.status == 101 {
            guard response.ended else { return mismatch("llhttp did not end the response where the scanner did") }
        }
        guard response.body == body else { return mismatch("body of \(response.body.count) bytes vs \(body.count)") }
        return .success(.agreed)
    }

    // MARK: Pieces

    /// The scanner's own consistency: the head alone gives the same result, one byte less is
    /// incomplete, and a field array that was not empty is only appended to.
    static func checkSplits(_ bytes: [UInt8], head: HTTP1RequestHead, fields: [HTTP1Field]) -> String? {
        var again: [HTTP1Field] = [HTTP1Field(kind: .other, name: 0..<0, value: 0..<0, line: 0..<0)]
        let exact = bytes.withUnsafeBytes {
            HTTP1HeadScanner.scanRequest(UnsafeRawBufferPointer(rebasing: $0[..<head.length]), maxHeadBytes: maxHeadBytes, fields: &again)
        }
        guard exact == .complete(head), Array(again.dropFirst()) == fields else { return "the head alone scans differently: \(exact)" }
        let short = bytes.withUnsafeBytes {
            HTTP1HeadScanner.scanRequest(UnsafeRawBufferPointer(rebasing: $0[..<(head.length - 1)]), maxHeadBytes: maxHeadBytes, fields: &again)
        }
        guard short == .incomplete, again.count == 1 + fields.count else { return "the head less a byte scans as \(short)" }
        return nil
    }

    /// The chunked body at `start`, scanned whole and byte by byte (which must agree): its payload
    /// and length, nil when it does not end in `bytes`.
    enum BodyRead {
        case incomplete
        case refused(HTTP1ScanError)
        /// The body's bytes (a chunked body's payload), where the message ends, and whether it
        /// runs to the close.
        case read(body: [UInt8], end: Int, closes: Bool)
    }

    /// The body `framing` gives after a head of `headLength` bytes, for requests and responses.
    static func readBody(_ bytes: [UInt8], headLength: Int, framing: HTTP1BodyFraming) -> BodyRead {
        switch framing {
        case .none:
            return .read(body: [], end: headLength, closes: false)
        case .length(let count):
            guard bytes.count - headLength >= count else { return .incomplete }
            return .read(body: Array(bytes[headLength..<(headLength + count)]), end: headLength + count, closes: false)
        case .chunked:
            switch scanChunked(bytes, from: headLength) {
            case .failure(let error): return .refused(error)
            case .success(nil): return .incomplete
            case .success(.some(let (payload, consumed))): return .read(body: payload, end: headLength + consumed, closes: false)
            }
        case .untilClose:
            return .read(body: Array(bytes[headLength...]), end: bytes.count, closes: true)
        }
    }

    static func scanChunked(_ bytes: [UInt8], from start: Int) -> Result<([UInt8], Int)?, HTTP1ScanError> {
        var whole = ChunkedBodyScanner()
        var payload: [UInt8] = []
        let result = bytes.withUnsafeBytes { all in
            let rest = UnsafeRawBufferPointer(rebasing: all[start...])
            return whole.scan(rest) { payload += rest[$0] }
        }
        var single = ChunkedBodyScanner()
        var singlePayload: [UInt8] = []
        var singleResult: Result<(consumed: Int, finished: Bool), HTTP1ScanError> = .success((0, false))
        var consumed = 0
        bytes.withUnsafeBytes { all in
            var offset = start
            while offset < all.count {
                let one = UnsafeRawBufferPointer(rebasing: all[offset..<(offset + 1)])
                singleResult = single.scan(one) { singlePayload += one[$0] }
                guard case .success(let step) = singleResult else { return }
                consumed += step.consumed
                if step.finished { return }
                precondition(step.consumed == 1, "the chunked scanner left a byte before the end of the body")
                offset += 1
            }
        }
        switch (result, singleResult) {
        case (.failure(let error), .failure(let other)):
            precondition(error == other, "chunked scans disagree: \(error) vs \(other)")
            return .failure(error)
        case (.success(let step), .success(let other)):
            precondition(step.finished == other.finished && (!step.finished || step.consumed == consumed),
                         "chunked scans disagree on the end")
            precondition(payload == singlePayload && whole.payloadBytes == single.payloadBytes, "chunked scans disagree on the payload")
            precondition(!step.finished || whole.payloadBytes == payload.count, "payloadBytes is not the payload")
            return .success(step.finished ? (payload, step.consumed) : nil)
        default:
            preconditionFailure("chunked scans disagree: \(result) vs \(singleResult)")
        }
    }

    /// Names and values, in order, as llhttp read them against the scanner's ranges.
    static func compareFields(_ headers: HTTPHeaders, _ fields: [HTTP1Field], _ bytes: [UInt8]) -> String? {
        guard headers.count == fields.count else { return "\(headers.count) fields vs \(fields.count)" }
        for ((name, value), field) in zip(headers, fields) {
            let scannedName = String(decoding: bytes[field.name], as: UTF8.self)
            let scannedValue = String(decoding: bytes[field.value], as: UTF8.self)
            // llhttp leaves trailing OWS in a value; the scanner takes it off (RFC 9110 5.5).
            var valueBytes = Array(value.utf8)
            while let last = valueBytes.last, last == 0x20 || last == 0x09 { valueBytes.removeLast() }
            // NIO decodes as UTF-8 (invalid bytes become U+FFFD), so the scanner's bytes are too.
            guard name == scannedName, valueBytes == Array(scannedValue.utf8) else {
                return "field \(name.debugDescription): \(value.debugDescription) vs \(scannedName.debugDescription): \(scannedValue.debugDescription)"
            }
        }
        return nil
    }

    struct Message<Head> {
        var head: Head
        var body: [UInt8] = []
        var ended = false
    }

    static func decodeRequest(_ bytes: [UInt8]) -> ([Message<HTTPRequestHead>], Error?) {
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish() }
        var error: Error?
        do {
            try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
            try channel.writeInbound(ByteBuffer(bytes: bytes))
        } catch let caught {
            error = caught
        }
        var messages: [Message<HTTPRequestHead>] = []
        while let part = try? channel.readInbound(as: HTTPServerRequestPart.self) {
            switch part {
            case .head(let head): messages.append(Message(head: head))
            case .body(let buffer): messages[messages.count - 1].body += buffer.readableBytesView
            case .end: messages[messages.count - 1].ended = true
            }
        }
        return (messages, error)
    }

    static func decodeResponse(_ bytes: [UInt8], close: Bool) -> ([Message<HTTPResponseHead>], Error?) {
        let channel = EmbeddedChannel()
        var error: Error?
        var messages: [Message<HTTPResponseHead>] = []
        func drain() {
            while let part = try? channel.readInbound(as: HTTPClientResponsePart.self) {
                switch part {
                case .head(let head): messages.append(Message(head: head))
                case .body(let buffer): messages[messages.count - 1].body += buffer.readableBytesView
                case .end: messages[messages.count - 1].ended = true
                }
            }
        }
        do {
            let sync = channel.pipeline.syncOperations
            try sync.addHandler(HTTPRequestEncoder())
            try sync.addHandler(ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .dropBytes, informationalResponseStrategy: .forward)))
            try channel.writeOutbound(HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/")))
            try channel.writeOutbound(HTTPClientRequestPart.end(nil))
            try channel.writeInbound(ByteBuffer(bytes: bytes))
        } catch let caught {
            error = caught
        }
        drain()
        if error == nil, close {
            // The end of a body delimited by the close: the decoder sees EOF.
            do {
                channel.pipeline.fireChannelInactive()
                try channel.throwIfErrorCaught()
            } catch let caught {
                error = caught
            }
            drain()
        }
        _ = try? channel.finish()
        return (messages, error)
    }
}

import Testing

@testable import ProxyRules

/// The chunked body scanner: where a chunked body ends and which bytes are its payload, whole,
/// byte by byte and at every split point; and what it refuses.
@Suite struct ChunkedBodyScannerTests {
    struct Outcome: Equatable {
        var consumed: Int
        var finished: Bool
        var payload: [UInt8]
        var payloadBytes: Int
        var hasTrailers: Bool
        var error: HTTP1ScanError?
    }

    /// Feeds `bytes` in pieces of the given sizes (the rest as one piece), stopping at the end of
    /// the body or an error.
    static func scan(_ bytes: [UInt8], pieces: [Int] = [], scanner: ChunkedBodyScanner = ChunkedBodyScanner()) -> Outcome {
        var scanner = scanner
        var payload: [UInt8] = []
        var offset = 0
        var sizes = pieces
        while true {
            let size = sizes.isEmpty ? bytes.count - offset : min(sizes.removeFirst(), bytes.count - offset)
            let piece = Array(bytes[offset..<(offset + size)])
            let result = piece.withUnsafeBytes { raw in
                scanner.scan(raw) { payload += raw[$0] }
            }
            switch result {
            case .failure(let error):
                return Outcome(consumed: offset, finished: false, payload: payload, payloadBytes: scanner.payloadBytes,
                               hasTrailers: scanner.hasTrailers, error: error)
            case .success(let step):
                offset += step.consumed
                if step.finished || offset == bytes.count {
                    #expect(scanner.isFinished == step.finished)
                    return Outcome(consumed: offset, finished: step.finished, payload: payload, payloadBytes: scanner.payloadBytes,
                                   hasTrailers: scanner.hasTrailers, error: nil)
                }
                guard step.consumed == size else {
                    Issue.record("a piece not consumed whole before the end")
                    return Outcome(consumed: offset, finished: false, payload: payload, payloadBytes: -1, hasTrailers: false, error: nil)
                }
            }
        }
    }

    static func scan(_ text: String) -> Outcome {
        scan(Array(text.utf8))
    }

    static func byteByByte(_ bytes: [UInt8]) -> Outcome {
        scan(bytes, pieces: Array(repeating: 1, count: bytes.count))
    }

    @Test func aBodyAndWhatFollowsIt() {
        let outcome = Self.scan("5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\nGET / HTTP/1.1\r\n")
        #expect(outcome.finished)
        #expect(outcome.consumed == 27)
        #expect(outcome.payload == Array("hello, world".utf8))
        #expect(outcome.payloadBytes == 12)
        #expect(!outcome.hasTrailers)
        #expect(outcome.error == nil)
    }

    @Test func payloadRangesPointIntoTheScannedBytes() {
        var scanner = ChunkedBodyScanner()
        var ranges: [Range<Int>] = []
        let bytes = Array("3\r\nabc\r\n2\r\nde\r\n".utf8)
        let result = bytes.withUnsafeBytes { scanner.scan($0) { ranges.append($0) } }
        #expect(ranges == [3..<6, 11..<13])
        if case .success(let step) = result {
            #expect(step.consumed == bytes.count && !step.finished)
        } else {
            Issue.record("\(result)")
        }
    }

    static let samples = [
        "5\r\nhello\r\n0\r\n\r\n",
        "A;name=value;flag;q=\"quoted \\\" \\\\ text\"\r\n0123456789\r\n000;last\r\nX-Trailer: 1\r\nOther:\r\n\r\nnext",
        "1\r\n\r\r\n2\r\n\r\n\r\n0\r\n\r\n",
        "0\r\n\r\n",
        "00000003\r\nabc\r\nf\r\n0123456789abcde\r\n0\r\nA: b c\t\r\n\r\n",
    ]

    @Test(arguments: samples)
    func byteByByteAndEverySplitGiveTheSameBody(text: String) {
        let bytes = Array(text.utf8)
        let whole = Self.scan(bytes)
        #expect(whole.finished && whole.error == nil, "\(whole)")
        #expect(Self.byteByByte(bytes) == whole)
        for cut in 0...bytes.count {
            #expect(Self.scan(bytes, pieces: [cut]) == whole, "cut \(cut)")
        }
    }

    @Test func anUnfinishedBodyConsumesEverything() {
        let outcome = Self.scan("5\r\nhel")
        #expect(!outcome.finished && outcome.error == nil && outcome.consumed == 6)
        #expect(outcome.payload == Array("hel".utf8))
        #expect(outcome.payloadBytes == 3, "payloadBytes counts the payload scanned, not the size announced")
    }

    @Test func trailers() {
        let outcome = Self.scan("1\r\na\r\n0\r\nX-Checksum: abc\r\nX-Other:  \r\n\r\n")
        #expect(outcome.finished && outcome.hasTrailers)
        #expect(outcome.payload == [UInt8(ascii: "a")])
    }

    @Test func afterTheEndNothingMoreIsTaken() {
        var scanner = ChunkedBodyScanner()
        let bytes = Array("0\r\n\r\n".utf8)
        _ = bytes.withUnsafeBytes { scanner.scan($0) { _ in } }
        #expect(scanner.isFinished)
        let more = Array("5\r\nhello".utf8)
        let result = more.withUnsafeBytes { scanner.scan($0) { _ in Issue.record("payload after the end") } }
        if case .success(let step) = result {
            #expect(step.consumed == 0 && step.finished)
        } else {
            Issue.record("\(result)")
        }
    }

    @Test(arguments: [
        "+5\r\nhello\r\n0\r\n\r\n", "-5\r\n", "0x5\r\nhello\r\n", " 5\r\nhello\r\n", "5 \r\nhello\r\n", "5\t\r\nhello\r\n",
        "\r\n", ";a\r\n", "g\r\n", "5\nhello\r\n", "5\rhello\r\n", "5\r\nhelloX\r\n", "5\r\nhello\n0\r\n\r\n",
        "5\r\nhello\rX", "5\r\nhello\r\n0\r\n\n", "5\r\nhello\r\n0\n\r\n", "5\r\nhello\r\n0\r\n\rX",
        "8000000000000000\r\n", "ffffffffffffffffffff\r\n", "1_0\r\n",
        // Extensions: no whitespace, token names, token or quoted values, ASCII.
        "5; a\r\nhello\r\n0\r\n\r\n", "5 ;a\r\n", "5;a =b\r\n", "5;a= b\r\n", "5;=b\r\n", "5;a=\r\n", "5;a=b c\r\n",
        "5;a=\"b\r\n", "5;a=\"b\"c\r\n", "5;a=\"\u{0}\"\r\n", "5;a=\"\\\u{1}\"\r\n", "5;a=é\r\n", "5;a=\"é\"\r\n", "5;;a\r\n",
        "5;a;\r\n", "5;a=b=c\r\n", "5;a\u{0}\r\n",
        // Trailers: the head's field rules, and no fields the proxy acts on.
        "0\r\nX: a\r\n b\r\n\r\n", "0\r\n X: a\r\n\r\n", "0\r\nX : a\r\n\r\n", "0\r\nX: a\nY: b\r\n\r\n", "0\r\nX: a\u{0}\r\n\r\n",
        "0\r\n: a\r\n\r\n", "0\r\nX\r\n\r\n", "0\r\nX: a\r\r\n\r\n", "0\r\nContent-Length: 5\r\n\r\n",
        "0\r\ntransfer-encoding: chunked\r\n\r\n", "0\r\nHost: evil\r\n\r\n", "0\r\nConnection: close\r\n\r\n",
        "0\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n", "0\r\nTRAILER: x\r\n\r\n", "0\r\nx-request-id: 1\r\n\r\n",
    ])
    func malformedBodiesAre400(text: String) {
        let bytes = Array(text.utf8)
        let whole = Self.scan(bytes)
        #expect(whole.error?.status == 400, "\(text.debugDescription): \(whole)")
        #expect(Self.byteByByte(bytes).error == whole.error)
    }

    @Test func validExtensions() {
        for text in ["5;a\r\nhello\r\n0\r\n\r\n", "5;a=b;c=\"\"\r\nhello\r\n0;x=\"y\\\"z\"\r\n\r\n", "5;A!#$%&'*+-.^_`|~=\"\t \u{21}\u{7E}\"\r\nhello\r\n0\r\n\r\n"] {
            let outcome = Self.scan(text)
            #expect(outcome.finished && outcome.payload == Array("hello".utf8), "\(text.debugDescription): \(outcome)")
        }
    }

    @Test func hexSizesInEitherCase() {
        #expect(Self.scan("a\r\n0123456789\r\nB\r\n0123456789a\r\n0\r\n\r\n").payloadBytes == 21)
        // The largest size that fits an Int is taken (and then waited for).
        let outcome = Self.scan("7fffffffffffffff\r\nabc")
        #expect(outcome.error == nil && !outcome.finished && outcome.payloadBytes == 3)
    }

    @Test func aSizeLineLongerThanTheLimitIs400() {
        let scanner = ChunkedBodyScanner(maxChunkLineBytes: 16)
        // "5;" + extension: the line's bytes before LF (its CR included) count.
        let fits = "5;" + String(repeating: "a", count: 13) + "\r\nhello\r\n0\r\n\r\n"
        #expect(Self.scan(Array(fits.utf8), scanner: scanner).finished)
        let over = "5;" + String(repeating: "a", count: 14) + "\r\nhello\r\n0\r\n\r\n"
        #expect(Self.scan(Array(over.utf8), scanner: scanner).error?.status == 400)
        #expect(Self.scan(Array((String(repeating: "0", count: 17) + "\r\n").utf8), scanner: scanner).error?.status == 400)
    }

    @Test func aTrailerSectionLargerThanTheLimitIs431() {
        let scanner = ChunkedBodyScanner(maxTrailerBytes: 32)
        let fits = "0\r\n" + "X: " + String(repeating: "a", count: 25) + "\r\n\r\n"  // 30 + 2
        #expect(Self.scan(Array(fits.utf8), scanner: scanner).finished)
        let over = "0\r\n" + "X: " + String(repeating: "a", count: 26) + "\r\n\r\n"
        #expect(Self.scan(Array(over.utf8), scanner: scanner).error?.status == 431)
    }

    @Test func aFailureIsFinal() {
        var scanner = ChunkedBodyScanner()
        let bad = Array("x\r\n".utf8)
        let first = bad.withUnsafeBytes { scanner.scan($0) { _ in } }
        let good = Array("0\r\n\r\n".utf8)
        let second = good.withUnsafeBytes { scanner.scan($0) { _ in } }
        guard case .failure(let error) = first, case .failure(let again) = second else {
            Issue.record("\(first) \(second)")
            return
        }
        #expect(error == again)
        #expect(!scanner.isFinished)
    }
}

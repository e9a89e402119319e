import Testing

@testable import Gateway

@Suite struct H2FrameScannerTests {
    typealias Header = H2FrameScanner.FrameHeader

    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    /// The preface, SETTINGS (one entry), HEADERS on stream 1 (R bit set, which is ignored),
    /// an empty DATA with END_STREAM on stream 1.
    static let bytes: [UInt8] =
        preface
        + H2SessionTests.frame(type: 0x4, stream: 0, [0, 3, 0, 0, 0, 100])
        + [0, 0, 3, 0x1, 0x5, 0x80, 0, 0, 1, 0x82, 0x84, 0x86]
        + H2SessionTests.frame(type: 0x0, flags: 0x1, stream: 1)

    static let headers = [
        Header(length: 6, type: 0x4, flags: 0, streamID: 0),
        Header(length: 3, type: 0x1, flags: 0x5, streamID: 1),
        Header(length: 0, type: 0x0, flags: 0x1, streamID: 1),
    ]

    /// Feeds `bytes` in pieces cut at `cuts`; returns the headers seen and the bytes passed on.
    static func scan(_ bytes: [UInt8], cuts: [Int], refuse: (Header) -> Bool = { _ in false }) -> ([Header], Int) {
        var scanner = H2FrameScanner()
        var seen: [Header] = []
        var passed = 0
        var start = 0
        for end in cuts + [bytes.count] where end >= start {
            let piece = Array(bytes[start..<end])
            var refused = false
            passed += piece.withUnsafeBytes { raw in
                scanner.scan(raw) { header in
                    seen.append(header)
                    refused = refuse(header)
                    return !refused
                }
            }
            if refused { break }
            start = end
        }
        return (seen, passed)
    }

    @Test func findsEveryFrameHeaderAfterThePreface() {
        let (seen, passed) = Self.scan(Self.bytes, cuts: [])
        #expect(seen == Self.headers)
        #expect(passed == Self.bytes.count)
    }

    @Test func findsTheSameHeadersHoweverTheBytesAreSplit() {
        for cut in 0...Self.bytes.count {
            let (seen, passed) = Self.scan(Self.bytes, cuts: [cut])
            #expect(seen == Self.headers, "cut at \(cut)")
            #expect(passed == Self.bytes.count, "cut at \(cut)")
        }
        let (seen, _) = Self.scan(Self.bytes, cuts: Array(1..<Self.bytes.count))
        #expect(seen == Self.headers, "one byte at a time")
    }

    /// A refused frame: nghttp2 gets everything before the last byte of its header, never the
    /// whole header, wherever the reads were cut.
    @Test func aRefusedFrameStopsBeforeTheLastByteOfItsHeader() {
        let lastByteOfHeadersFrameHeader = Self.preface.count + 9 + 6 + 8
        for cut in 0...Self.bytes.count {
            let (seen, passed) = Self.scan(Self.bytes, cuts: [cut]) { $0.type == 0x1 }
            #expect(seen == Array(Self.headers.prefix(2)), "cut at \(cut)")
            #expect(passed == lastByteOfHeadersFrameHeader, "cut at \(cut)")
        }
    }

    @Test func largeLengthsAndStreamIDsDecode() {
        let bytes = Self.preface + [0xFF, 0xFF, 0xFF, 0xFA, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        let (seen, _) = Self.scan(bytes, cuts: [])
        #expect(seen == [Header(length: 0xFF_FFFF, type: 0xFA, flags: 0xFF, streamID: Int32.max)])
    }
}

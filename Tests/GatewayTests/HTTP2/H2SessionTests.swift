import NIOCore
import Testing

@testable import Gateway

/// The nghttp2 session wrapper driven with raw client frames, without a network: what it
/// reports, and what it sends back.
@Suite struct H2SessionTests {
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    static func frame(type: UInt8, flags: UInt8 = 0, stream: UInt32, _ payload: [UInt8] = []) -> [UInt8] {
        let length = payload.count
        var bytes: [UInt8] = [UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF), type, flags]
        bytes += [UInt8(stream >> 24 & 0x7F), UInt8(stream >> 16 & 0xFF), UInt8(stream >> 8 & 0xFF), UInt8(stream & 0xFF)]
        return bytes + payload
    }

    /// POST / on `stream`: HPACK static-table fields, then `:authority: a`.
    static func postHeaders(stream: UInt32, endStream: Bool = false) -> [UInt8] {
        frame(type: 0x1, flags: 0x4 | (endStream ? 0x1 : 0), stream: stream, [0x83, 0x84, 0x86, 0x41, 0x01, 0x61])
    }

    struct Frame {
        var type: UInt8
        var flags: UInt8
        var stream: UInt32
        var payload: [UInt8]
    }

    static func frames(_ buffer: ByteBuffer) -> [Frame] {
        var bytes = Array(buffer.readableBytesView)[...]
        var frames: [Frame] = []
        while bytes.count >= 9 {
            let header = Array(bytes.prefix(9))
            let length = Int(header[0]) << 16 | Int(header[1]) << 8 | Int(header[2])
            let stream = UInt32(header[5] & 0x7F) << 24 | UInt32(header[6]) << 16 | UInt32(header[7]) << 8 | UInt32(header[8])
            frames.append(Frame(type: header[3], flags: header[4], stream: stream, payload: Array(bytes.dropFirst(9).prefix(length))))
            bytes = bytes.dropFirst(9 + length)
        }
        return frames
    }

    static func windowIncrement(_ frame: Frame) -> Int {
        Int(frame.payload[0] & 0x7F) << 24 | Int(frame.payload[1]) << 16 | Int(frame.payload[2]) << 8 | Int(frame.payload[3])
    }

    func makeSession() throws -> H2Session {
        try H2Session(settings: H2Session.Settings(), allocator: ByteBufferAllocator())
    }

    func feed(_ session: H2Session, _ bytes: [UInt8]) throws {
        try session.receive(ByteBuffer(bytes: bytes))
    }

    func output(_ session: H2Session) -> [Frame] {
        var out = ByteBuffer()
        session.produceOutput(into: &out)
        return Self.frames(out)
    }

    @Test func uploadWindowOpensOnlyWhenTheBytesAreConsumed() throws {
        let session = try makeSession()
        try feed(session, Self.preface + Self.frame(type: 0x4, stream: 0) + Self.postHeaders(stream: 1))
        _ = output(session)
        // The whole initial stream window (65,535 bytes) in DATA frames.
        var sent = 0
        while sent < 65_535 {
            let chunk = min(16_384, 65_535 - sent)
            try feed(session, Self.frame(type: 0x0, stream: 1, [UInt8](repeating: 7, count: chunk)))
            sent += chunk
        }
        var received = 0
        var requests = 0
        for event in session.takeEvents() {
            switch event {
            case .request(let id, let head, let endStream):
                requests += 1
                #expect(id == 1 && head.method == "POST" && head.path == "/" && head.authority == "a" && !endStream)
            case .data(_, let buffer, _): received += buffer.readableBytes
            default: break
            }
        }
        #expect(requests == 1)
        #expect(received == 65_535)
        // Nothing consumed yet: no WINDOW_UPDATE for the stream, so the client stays blocked.
        let before = output(session)
        #expect(!before.contains { $0.type == 0x8 && $0.stream == 1 })

        session.consume(streamID: 1, count: 65_535)
        let after = output(session)
        let update = try #require(after.first { $0.type == 0x8 && $0.stream == 1 })
        #expect(Self.windowIncrement(update) == 65_535)
    }

    @Test func responseBodyIsPulledFromTheQueueAndEndsWithTrailers() throws {
        let session = try makeSession()
        try feed(session, Self.preface + Self.frame(type: 0x4, stream: 0) + Self.postHeaders(stream: 1, endStream: true))
        _ = session.takeEvents()
        _ = output(session)
        #expect(session.submitResponse(streamID: 1, status: 200, headers: ["content-type": "text/plain"], hasBody: true))
        session.sendBody(streamID: 1, ByteBuffer(string: "hello"))
        var frames = output(session)
        #expect(frames.contains { $0.type == 0x1 && $0.stream == 1 })
        #expect(frames.contains { $0.type == 0x0 && $0.stream == 1 && $0.payload == Array("hello".utf8) && $0.flags & 0x1 == 0 })
        // Nothing queued: nghttp2 waits (deferred) until the next bytes or the end.
        #expect(output(session).isEmpty)
        session.finishBody(streamID: 1, trailers: ["grpc-status": "0"])
        frames = output(session)
        #expect(frames.contains { $0.type == 0x1 && $0.stream == 1 && $0.flags & 0x1 == 0x1 }, "trailers end the stream")
        #expect(session.takeEvents().contains {
            if case .streamClosed(1, 0) = $0 { return true }
            return false
        })
    }

    @Test func pingFloodIsReported() throws {
        let session = try makeSession()
        try feed(session, Self.preface + Self.frame(type: 0x4, stream: 0))
        for index in 0..<150 {
            try feed(session, Self.frame(type: 0x6, stream: 0, [UInt8](repeating: UInt8(index & 0xFF), count: 8)))
            _ = output(session)
        }
        let floods = session.takeEvents().filter {
            if case .flood(kind: "PING flood") = $0 { return true }
            return false
        }
        #expect(!floods.isEmpty)
    }

    @Test func rapidResetEndsTheSession() throws {
        let session = try makeSession()
        try feed(session, Self.preface + Self.frame(type: 0x4, stream: 0))
        var bytes: [UInt8] = []
        for index in 0..<400 {
            let stream = UInt32(2 * index + 1)
            bytes += Self.postHeaders(stream: stream, endStream: true)
            bytes += Self.frame(type: 0x3, stream: stream, [0, 0, 0, 0x8])
        }
        try? feed(session, bytes)
        let floods = session.takeEvents().filter {
            if case .flood(kind: "rapid reset (RST_STREAM flood)") = $0 { return true }
            return false
        }
        // 400 resets against a burst of 200.
        #expect(floods.count >= 199)
    }

    @Test func tooManyContinuationsFailTheSession() throws {
        let session = try makeSession()
        try feed(session, Self.preface + Self.frame(type: 0x4, stream: 0))
        var bytes = Self.frame(type: 0x1, flags: 0x1, stream: 1, [0x83, 0x84, 0x86])
        for _ in 0..<20 { bytes += Self.frame(type: 0x9, stream: 1, [0x41, 0x01, 0x61]) }
        do {
            try session.receive(ByteBuffer(bytes: bytes))
            Issue.record("20 CONTINUATION frames were accepted")
        } catch {
            #expect(error.isFlood, "\(error)")
        }
    }

    /// DATA after the client's END_STREAM, in the same read as the request: the request is
    /// reported, the DATA never reaches nghttp2, and `receive` says why (STREAM_CLOSED).
    @Test func dataAfterTheClientEndedTheStreamFailsWithStreamClosed() throws {
        let session = try makeSession()
        try feed(session, Self.preface + Self.frame(type: 0x4, stream: 0))
        do {
            try session.receive(
                ByteBuffer(bytes: Self.postHeaders(stream: 1, endStream: true) + Self.frame(type: 0x0, flags: 0x1, stream: 1, [1, 2])))
            Issue.record("DATA after END_STREAM was accepted")
        } catch {
            #expect(error.errorCode == 0x5, "\(error)")
            #expect(error.description == "DATA on stream 1 after the client ended it")
        }
        #expect(session.takeEvents().contains {
            if case .request(1, _, true) = $0 { return true }
            return false
        })
    }

    @Test func aBrokenPrefaceFailsAsBadPreface() throws {
        let session = try makeSession()
        do {
            try session.receive(ByteBuffer(string: "PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"))
            Issue.record("a broken preface was accepted")
        } catch {
            #expect(error.isBadPreface && error.errorCode == 0x1, "\(error)")
        }
    }
}

@Suite struct TokenBucketTests {
    @Test func burstThenRate() {
        let start = NIODeadline.now()
        var bucket = TokenBucket(burst: 3, perSecond: 10)
        var taken = false
        for _ in 0..<3 { taken = bucket.take(now: start); #expect(taken) }
        taken = bucket.take(now: start); #expect(!taken)
        // 100 ms later one token is back, and only one.
        taken = bucket.take(now: start + .milliseconds(100)); #expect(taken)
        taken = bucket.take(now: start + .milliseconds(100)); #expect(!taken)
        // Never more than the burst, however long the pause.
        let later = start + .seconds(60)
        for _ in 0..<3 { taken = bucket.take(now: later); #expect(taken) }
        taken = bucket.take(now: later); #expect(!taken)
    }
}

import NIOCore
import Testing

@testable import Gateway

/// The session's output when large DATA payloads go out as their own buffers (NO_COPY): the
/// parts, written in order, are the same bytes the copying path produces.
@Suite struct H2SessionOutputTests {
    typealias T = H2SessionTests

    func session(body chunks: [Int]) throws -> (H2Session, [ByteBuffer]) {
        let session = try H2Session(settings: H2Session.Settings(), allocator: ByteBufferAllocator())
        try session.receive(ByteBuffer(bytes: T.preface + T.frame(type: 0x4, stream: 0) + T.postHeaders(stream: 1, endStream: true)))
        var scratch = ByteBuffer()
        session.produceOutput(into: &scratch)
        _ = session.takeEvents()
        #expect(session.submitResponse(streamID: 1, status: 200, headers: ["content-type": "text/plain"], hasBody: true))
        var sent: [ByteBuffer] = []
        var counter: UInt8 = 0
        for size in chunks {
            var buffer = ByteBuffer()
            for _ in 0..<size {
                buffer.writeInteger(counter)
                counter &+= 7
            }
            sent.append(buffer)
            session.sendBody(streamID: 1, buffer)
        }
        session.finishBody(streamID: 1, trailers: nil)
        return (session, sent)
    }

    func body(of frames: [T.Frame]) -> [UInt8] {
        frames.filter { $0.type == 0x0 && $0.stream == 1 }.flatMap(\.payload)
    }

    @Test(arguments: [[100], [5000], [100, 3000, 20000], [16_384, 1, 16_383, 30_000]])
    func largePayloadsWrittenApartKeepTheirOrder(chunks: [Int]) throws {
        let (copying, sent) = try session(body: chunks)
        var copied = ByteBuffer()
        copying.produceOutput(into: &copied)

        let (slicing, _) = try session(body: chunks)
        var parts: [ByteBuffer] = []
        var rest = ByteBuffer()
        slicing.produceOutput(into: &rest) { parts.append($0) }
        var joined = ByteBuffer()
        for part in parts { joined.writeImmutableBuffer(part) }
        joined.writeImmutableBuffer(rest)

        let expected = sent.flatMap { Array($0.readableBytesView) }
        let copiedFrames = T.frames(copied)
        let joinedFrames = T.frames(joined)
        #expect(body(of: copiedFrames) == expected)
        #expect(body(of: joinedFrames) == expected)
        #expect(Array(joined.readableBytesView) == Array(copied.readableBytesView))
        #expect((joinedFrames.last { $0.stream == 1 }?.flags ?? 0) & 0x1 == 0x1, "the last frame ends the stream")
    }
}

/// The response body queue: buffers come out in order, a read may stop inside one.
@Suite struct H2BufferQueueTests {
    @Test func slicesComeOutInOrderAcrossAndWithinBuffers() {
        var queue = H2Session.BufferQueue()
        #expect(queue.isEmpty)
        #expect(queue.readSliceOfFirst(upTo: 10) == nil)
        for text in ["abc", "defgh", "i", "jk"] { queue.append(ByteBuffer(string: text)) }
        var out: [String] = []
        for length in [2, 5, 5, 1, 9] {
            if let slice = queue.readSliceOfFirst(upTo: length) { out.append(String(buffer: slice)) }
        }
        // A slice never spans two buffers.
        #expect(out == ["ab", "c", "defgh", "i", "jk"])
        #expect(queue.isEmpty)
        queue.append(ByteBuffer(string: "z"))
        #expect(queue.readSliceOfFirst(upTo: 4).map { String(buffer: $0) } == "z")
        #expect(queue.isEmpty)
    }
}

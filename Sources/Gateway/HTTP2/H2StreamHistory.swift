/// What the gateway remembers of a client's streams that nghttp2 does not, to catch frames
/// RFC 9113 forbids on streams that are over.
///
/// nghttp2 forgets a stream once it closes (the session runs with `no_closed_streams`, which
/// keeps memory flat) and then drops whatever comes on it, and it cannot tell a stream id
/// below the highest one used from a stream that merely closed. So it lets through:
/// - DATA or HEADERS after the client itself ended the stream, with END_STREAM or RST_STREAM
///   (RFC 9113 5.1: a connection error STREAM_CLOSED once the stream is closed; nghttp2 does
///   catch it while the gateway is still answering, half-closed (remote));
/// - HEADERS that open a stream id below one already used (RFC 9113 5.1.1: PROTOCOL_ERROR);
/// - DATA on an id the client skipped, which the first use of a higher id closed unused.
///
/// A stream the gateway reset while the client was still sending is not remembered: frames
/// the client sent before it saw that RST_STREAM may still arrive, and must be ignored (RFC
/// 9113 5.1), which nghttp2 does.
///
/// Bounded: the last `endedCapacity` streams the client ended and the last `skippedCapacity`
/// runs of skipped ids. What has been forgotten is let through to nghttp2, which ignores it,
/// as it did before this existed.
struct H2StreamHistory {
    enum Violation: Equatable, CustomStringConvertible {
        /// DATA or HEADERS on a stream the client had ended.
        case frameAfterEnd(frameType: UInt8, streamID: Int32)
        /// HEADERS on an id below the highest the client used, never opened.
        case streamIDNotIncreasing(streamID: Int32, highest: Int32)
        /// DATA on an id the client skipped: closed without ever being opened.
        case dataOnSkippedStream(streamID: Int32)

        /// The HTTP/2 error code of the GOAWAY.
        var errorCode: UInt32 {
            switch self {
            case .frameAfterEnd, .dataOnSkippedStream: 0x5  // STREAM_CLOSED
            case .streamIDNotIncreasing: 0x1  // PROTOCOL_ERROR
            }
        }

        var description: String {
            switch self {
            case .frameAfterEnd(let type, let id):
                "\(type == H2StreamHistory.data ? "DATA" : "HEADERS") on stream \(id) after the client ended it"
            case .streamIDNotIncreasing(let id, let highest):
                "HEADERS opening stream \(id) after stream \(highest)"
            case .dataOnSkippedStream(let id):
                "DATA on stream \(id), which the client skipped"
            }
        }
    }

    static let data: UInt8 = 0x0
    static let headers: UInt8 = 0x1
    static let rstStream: UInt8 = 0x3
    static let continuation: UInt8 = 0x9
    static let endStream: UInt8 = 0x1
    static let endHeaders: UInt8 = 0x4

    let endedCapacity: Int
    let skippedCapacity: Int
    /// The highest stream id a client HEADERS used (0: none yet).
    private(set) var highest: Int32 = 0
    /// Streams the client ended, oldest overwritten first.
    private var ended: [Int32] = []
    private var endedNext = 0
    /// Runs of odd ids the client skipped, oldest dropped first.
    private var skipped: [ClosedRange<Int32>] = []
    /// A HEADERS with END_STREAM whose header block goes on in CONTINUATION frames: the
    /// stream ends with the block.
    private var endsWithHeaderBlock: Int32?

    init(endedCapacity: Int = 128, skippedCapacity: Int = 16) {
        self.endedCapacity = endedCapacity
        self.skippedCapacity = skippedCapacity
    }

    /// Judges one frame header from the client, before nghttp2 sees the frame, and remembers
    /// what it says about the stream. Nil: pass it on.
    mutating func receive(_ frame: H2FrameScanner.FrameHeader) -> Violation? {
        let id = frame.streamID
        let pendingEnd = endsWithHeaderBlock
        endsWithHeaderBlock = nil
        // Stream 0, even ids (the gateway opens none) and ids never used are nghttp2's to judge.
        guard id & 1 == 1 else { return nil }
        if id > highest {
            if frame.type == Self.headers {
                open(id)
                endIfLast(frame)
            }
            return nil
        }
        switch frame.type {
        case Self.data:
            if hasEnded(id) { return .frameAfterEnd(frameType: frame.type, streamID: id) }
            if isSkipped(id) { return .dataOnSkippedStream(streamID: id) }
            endIfLast(frame)
        case Self.headers:
            if hasEnded(id) { return .frameAfterEnd(frameType: frame.type, streamID: id) }
            if isSkipped(id) { return .streamIDNotIncreasing(streamID: id, highest: highest) }
            endIfLast(frame)
        case Self.continuation:
            // Out of place CONTINUATION frames are nghttp2's (PROTOCOL_ERROR).
            if pendingEnd == id {
                if frame.flags & Self.endHeaders != 0 {
                    markEnded(id)
                } else {
                    endsWithHeaderBlock = id
                }
            }
        case Self.rstStream:
            markEnded(id)
        default:
            break
        }
        return nil
    }

    private mutating func open(_ id: Int32) {
        let first = highest == 0 ? 1 : highest + 2
        if id > first {
            if skipped.count == skippedCapacity { skipped.removeFirst() }
            skipped.append(first...(id - 2))
        }
        highest = id
    }

    /// END_STREAM on DATA or HEADERS: the stream ends with this frame, or for HEADERS with the
    /// end of its header block.
    private mutating func endIfLast(_ frame: H2FrameScanner.FrameHeader) {
        guard frame.flags & Self.endStream != 0 else { return }
        if frame.type == Self.headers, frame.flags & Self.endHeaders == 0 {
            endsWithHeaderBlock = frame.streamID
        } else {
            markEnded(frame.streamID)
        }
    }

    private mutating func markEnded(_ id: Int32) {
        guard !hasEnded(id) else { return }
        if ended.count < endedCapacity {
            ended.append(id)
        } else {
            ended[endedNext] = id
            endedNext = (endedNext + 1) % endedCapacity
        }
    }

    func hasEnded(_ id: Int32) -> Bool { ended.contains(id) }

    func isSkipped(_ id: Int32) -> Bool { skipped.contains { $0.contains(id) } }
}

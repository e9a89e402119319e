/// Walks the client's side of an HTTP/2 connection ahead of nghttp2: past the 24-byte
/// connection preface, then frame by frame, reporting each frame header once its 9 bytes are
/// in, so the session can judge a frame before nghttp2 acts on it.
///
/// It holds no bytes back: a header split across reads is assembled here while its first
/// bytes go on to nghttp2, which cannot act on a header before its last byte. So a frame is
/// refused by passing on only the bytes before its header's last one.
///
/// Frame header (RFC 9113 4.1): length (24 bits), type (8), flags (8), R (1) + stream id (31).
struct H2FrameScanner {
    struct FrameHeader: Equatable {
        var length: Int
        var type: UInt8
        var flags: UInt8
        var streamID: Int32
    }

    static let prefaceLength = 24
    static let headerLength = 9

    private var prefaceRemaining = Self.prefaceLength
    /// Header bytes seen so far of the frame being assembled (0 between frames).
    private var headerCount = 0
    /// Length, type and flags as they come in (the first 5 header bytes).
    private var front: UInt64 = 0
    /// R bit and stream id (the last 4 header bytes).
    private var back: UInt32 = 0
    private var payloadRemaining = 0

    /// Goes over the next `bytes` from the client, calling `accept` with each frame header they
    /// complete; `accept` returns false to refuse that frame. Returns how many of `bytes` may
    /// go on to nghttp2: all of them, or those before the refused header's last byte. After a
    /// refusal the scanner stops where it is; the connection is over.
    mutating func scan(_ bytes: UnsafeRawBufferPointer, accept: (FrameHeader) -> Bool) -> Int {
        var index = 0
        let count = bytes.count
        while index < count {
            if prefaceRemaining > 0 {
                let take = min(prefaceRemaining, count - index)
                prefaceRemaining -= take
                index += take
            } else if payloadRemaining > 0 {
                let take = min(payloadRemaining, count - index)
                payloadRemaining -= take
                index += take
            } else {
                let byte = bytes[index]
                if headerCount < 5 {
                    front = front << 8 | UInt64(byte)
                } else {
                    back = back << 8 | UInt32(byte)
                }
                headerCount += 1
                if headerCount == Self.headerLength {
                    let header = FrameHeader(
                        length: Int(front >> 16),
                        type: UInt8(truncatingIfNeeded: front >> 8),
                        flags: UInt8(truncatingIfNeeded: front),
                        streamID: Int32(bitPattern: back & 0x7FFF_FFFF))
                    guard accept(header) else { return index }
                    headerCount = 0
                    front = 0
                    back = 0
                    payloadRemaining = header.length
                }
                index += 1
            }
        }
        return count
    }
}

import NIOCore
import ProxyRules

/// Frames a backend's HTTP/1.1 response as its bytes arrive: the head (scanned in one pass, its
/// fields as ranges), the body as slices of what was read (no copies), and the end. Both client
/// protocols use it: an HTTP/1.1 client gets a chunked body with its framing as it came
/// (`keepChunkFraming`), counted by the chunk scanner; HTTP/2 and HTTP/1.0 get the payload only.
///
/// Interim responses (1xx) come as heads of their own before the final one; after a 101 nothing
/// more is HTTP and the rest of the bytes are the tunnel's (`switchedBytes`).
struct BackendResponseReader {
    enum Event {
        /// A response head; `fields` are ranges into `head`'s readable bytes. Valid only during
        /// the call (the field array is the loop's scratch space).
        /// `framing`: how the body of a final response comes (none for HEAD, 204, 304).
        case head(HTTP1ResponseHead, head: ByteBuffer, fields: [HTTP1Field], framing: HTTP1BodyFraming)
        case body(ByteBuffer)
        /// The response is complete. `trailers`: the raw trailer field lines of a chunked body
        /// (when the payload alone was passed on), for HTTP/2 to send as a trailer block.
        case end(trailers: ByteBuffer?)
    }

    enum Failure: Error, CustomStringConvertible {
        case malformed(String)
        case closedEarly

        var description: String {
            switch self {
            case .malformed(let reason): "malformed response: \(reason)"
            case .closedEarly: "connection closed before the response was complete"
            }
        }
    }

    private enum State {
        case head
        /// `remaining` body bytes to come.
        case fixed(remaining: Int)
        case chunked(ChunkedBodyScanner)
        case untilClose
        /// After a 101: the rest is the tunnel's.
        case switched
        case done
    }

    private var state = State.head
    private var pending: ByteBuffer?
    /// How far the buffered part of a head was searched for its end.
    private var headSearchedUpTo = 0
    /// Chunk framing read since the last payload byte (payload mode), for the trailer section.
    private var framingTail: ByteBuffer?
    let requestIsHead: Bool
    let keepChunkFraming: Bool
    let maxHeadBytes: Int
    /// The framing of the final response, for the client side (known once its head came).
    private(set) var framing = HTTP1BodyFraming.none
    /// Bytes read after a 101 (the backend's first tunnel bytes).
    private(set) var switchedBytes: ByteBuffer?

    init(requestIsHead: Bool, keepChunkFraming: Bool, maxHeadBytes: Int) {
        self.requestIsHead = requestIsHead
        self.keepChunkFraming = keepChunkFraming
        self.maxHeadBytes = maxHeadBytes
    }

    var isDone: Bool {
        if case .done = state { return true }
        return false
    }

    /// Whether the body runs until the connection closes.
    var readsUntilClose: Bool {
        if case .untilClose = state { return true }
        return false
    }

    /// Frames `bytes`, reporting what they complete to `emit`. Bytes after the end of the
    /// response are an error (a backend speaking out of turn): a pooled connection must carry
    /// exactly one response per request.
    mutating func read(
        _ bytes: ByteBuffer, scratch: inout [HTTP1Field], _ emit: (Event) throws -> Void
    ) throws {
        var input: ByteBuffer
        if var held = pending.take() {
            var more = bytes
            held.writeBuffer(&more)
            input = held
        } else {
            input = bytes
        }
        while input.readableBytes > 0 {
            switch state {
            case .head:
                // Scanned only once the bytes may hold the head's end (see `HTTP1HeadScanner.mayHoldEnd`).
                let count = input.readableBytes
                if count <= maxHeadBytes,
                    !input.withUnsafeReadableBytes({ HTTP1HeadScanner.mayHoldEnd($0, from: headSearchedUpTo) })
                {
                    headSearchedUpTo = count
                    pending = input
                    return
                }
                headSearchedUpTo = 0
                scratch.removeAll(keepingCapacity: true)
                let result = input.withUnsafeReadableBytes { raw in
                    HTTP1HeadScanner.scanResponse(raw, maxHeadBytes: maxHeadBytes, fields: &scratch)
                }
                switch result {
                case .incomplete:
                    pending = input
                    return
                case .invalid(let error):
                    throw Failure.malformed(error.reason)
                case .complete(let head):
                    let headBytes = input.readSlice(length: head.length)!
                    if head.status < 200 {
                        try emit(.head(head, head: headBytes, fields: scratch, framing: .none))
                        if head.status == 101 {
                            state = .switched
                            switchedBytes = input.readableBytes > 0 ? input : nil
                            return
                        }
                        continue
                    }
                    let noBody = requestIsHead || head.status == 204 || head.status == 304
                    framing = noBody ? .none : head.framing
                    switch framing {
                    case .none, .length(0): state = .done
                    case .length(let count): state = .fixed(remaining: count)
                    case .chunked: state = .chunked(ChunkedBodyScanner())
                    case .untilClose: state = .untilClose
                    }
                    try emit(.head(head, head: headBytes, fields: scratch, framing: framing))
                    if case .done = state { try emit(.end(trailers: nil)) }
                }
            case .fixed(let remaining):
                let count = min(remaining, input.readableBytes)
                let slice = input.readSlice(length: count)!
                state = remaining == count ? .done : .fixed(remaining: remaining - count)
                try emit(.body(slice))
                if case .done = state { try emit(.end(trailers: nil)) }
            case .chunked(var scanner):
                try readChunked(&scanner, from: &input, emit)
            case .untilClose:
                try emit(.body(input))
                input.moveReaderIndex(forwardBy: input.readableBytes)
            case .switched:
                if switchedBytes == nil { switchedBytes = input } else { switchedBytes!.writeBuffer(&input) }
                return
            case .done:
                throw Failure.malformed("\(input.readableBytes) bytes after the end of the response")
            }
        }
    }

    private mutating func readChunked(
        _ scanner: inout ChunkedBodyScanner, from input: inout ByteBuffer, _ emit: (Event) throws -> Void
    ) throws {
        let start = input.readerIndex
        var payload: [Range<Int>] = []
        let keep = keepChunkFraming
        let result = input.withUnsafeReadableBytes { raw in
            scanner.scan(raw) { range in
                if !keep { payload.append(range) }
            }
        }
        let consumed: Int
        let finished: Bool
        switch result {
        case .failure(let error):
            throw Failure.malformed(error.reason)
        case .success(let step):
            consumed = step.consumed
            finished = step.finished
        }
        if keep {
            if consumed > 0 { try emit(.body(input.getSlice(at: start, length: consumed)!)) }
        } else {
            for range in payload where !range.isEmpty {
                try emit(.body(input.getSlice(at: start + range.lowerBound, length: range.count)!))
            }
        }
        var trailers: ByteBuffer?
        if !keep {
            // The framing bytes after the last payload byte, kept across reads: at the end they
            // hold the last chunk's line and the trailer section, however the reads split them.
            let after = payload.last?.upperBound ?? 0
            if payload.last != nil { framingTail = nil }
            if consumed > after {
                var more = input.getSlice(at: start + after, length: consumed - after)!
                if framingTail == nil { framingTail = more } else { framingTail!.writeBuffer(&more) }
            }
            if finished, scanner.hasTrailers, let tail = framingTail {
                trailers = Self.trailerSection(of: tail)
            }
            if finished { framingTail = nil }
        }
        input.moveReaderIndex(forwardBy: consumed)
        if finished {
            state = .done
            try emit(.end(trailers: trailers))
        } else {
            state = .chunked(scanner)
            if consumed == 0 || input.readableBytes > 0 {
                // The scanner needs more than there is (a size line cut in two): keep the rest.
                pending = input.readableBytes > 0 ? input : nil
                input.moveReaderIndex(forwardBy: input.readableBytes)
            }
        }
    }

    /// The field lines in the chunk framing that ended a body (read after its last payload byte):
    /// after the last chunk's line (`0`, maybe with extensions), up to the final CRLF.
    static func trailerSection(of bytes: ByteBuffer) -> ByteBuffer? {
        let view = bytes.readableBytesView
        var index = view.startIndex
        var lineStart = index
        var sawLastChunk = false
        while index < view.endIndex - 1 {
            if view[index] == 0x0D, view[index + 1] == 0x0A {
                let line = lineStart..<index
                if sawLastChunk {
                    // From here to the end less the final CRLF are the trailer lines.
                    let from = lineStart - view.startIndex
                    let length = bytes.readableBytes - from - 2
                    return length > 0 ? bytes.getSlice(at: bytes.readerIndex + from, length: length) : nil
                }
                if !line.isEmpty, view[line.lowerBound] == 0x30 {
                    sawLastChunk = true
                }
                index += 2
                lineStart = index
                continue
            }
            index += 1
        }
        return nil
    }

    /// The backend closed its connection: the end of a body that runs until the close, or a
    /// response cut short.
    mutating func connectionClosed(_ emit: (Event) throws -> Void) throws {
        switch state {
        case .untilClose:
            state = .done
            try emit(.end(trailers: nil))
        case .done, .switched:
            return
        case .head, .fixed, .chunked:
            throw Failure.closedEarly
        }
    }
}

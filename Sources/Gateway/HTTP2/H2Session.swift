import CNghttp2
import NIOCore
import NIOHTTP1

/// One nghttp2 server session: bytes in, events and bytes out.
///
/// nghttp2 reports through callbacks that run inside `mem_recv` and `mem_send`. Here they only
/// copy what nghttp2 lends (header fields, DATA chunks) and append an `Event`; the connection
/// handler acts on the events after the C call has returned, so nothing re-enters the session or
/// the channel pipeline from inside nghttp2. The one exception is the DATA read callback, which
/// must answer nghttp2 on the spot: it copies from this object's own per-stream queues.
///
/// Automatic window updates are off: DATA counts against the client's windows until the handler
/// calls `consume`, which it does once the backend has taken the bytes. That is the upload
/// backpressure; a slow backend holds the client at its window, not the gateway's memory.
///
/// Used on one event loop only.
final class H2Session {
    struct Settings: Sendable, Equatable {
        var maxConcurrentStreams: UInt32 = 128
        /// Per-stream receive window; also the most a stream's upload can have waiting in the gateway.
        var initialWindowSize: UInt32 = 65_535
        /// Receive window of the whole connection.
        var connectionWindowSize: UInt32 = 1 << 20
        var maxFrameSize: UInt32 = 16_384
        /// RFC 9113 size (name + value + 32 per field) of a request's header list.
        var maxHeaderListSize: UInt32 = 64 * 1024
        /// RST_STREAMs a client may send: a burst, then so many per second (rapid reset). Counted
        /// here so the connection closes with ENHANCE_YOUR_CALM; nghttp2's own limiter, five
        /// times looser, stays as a backstop for a burst larger than that in a single read.
        var resetBurst: Int = 200
        var resetRate: Int = 33
        /// PING and SETTINGS frames a client may send: a burst, then so many per second.
        var controlFrameBurst: Int = 100
        var controlFrameRate: Int = 10
        /// CONTINUATION frames after one HEADERS frame.
        var maxContinuations: Int = 8
    }

    /// A request's head: the pseudo-header fields taken apart, and the backend's HTTP/1.1 head
    /// written as the fields come in.
    ///
    /// nghttp2 lets through only lower-case token names, values without CR, LF or NUL (RFC 9113
    /// 8.2.1) and pseudo-header fields before all others (8.3), so each field that goes to the
    /// backend as it is becomes a `name: value\r\n` line of `upstream` straight from nghttp2's
    /// bytes, after the request line and the `host` from `:authority`. The fields the gateway acts
    /// on are held apart; `H2StreamExchange` completes the head (`ForwardedRequestHead`'s rules:
    /// hop-by-hop and framing fields, `expect`, `te` and the client's `X-Forwarded-*` and
    /// `X-Request-Id` are not passed on, cookie crumbs are joined again, `:authority` is the Host).
    ///
    /// For a trailer section `upstream` holds every field as a line.
    ///
    /// A class: the head is filled in place by nghttp2's header callback, then travels in an
    /// `Event` to the stream exchange. As a struct (some 240 bytes, three buffers and five
    /// strings) it was copied on the way about five times per request, each copy retaining and
    /// releasing every buffer in it; one allocation costs less than those.
    final class RequestHead {
        var method = ""
        var path = ""
        var authority: String?
        var scheme: String?
        /// The backend's head so far (see above).
        var upstream = ByteBuffer()
        /// The request line (and `host`) is in `upstream`: the pseudo-header fields are over.
        var requestLineWritten = false
        /// The first `host` field (the Host when there is no `:authority`).
        var host: String?
        var contentLength: Int?
        /// A `trailer` field announced trailers.
        var announcesTrailers = false
        /// The `cookie` crumbs, joined with "; " (RFC 9113 8.2.3).
        var cookie: ByteBuffer?
        /// The client's `x-forwarded-for` values, each followed by ", ".
        var forwardedFor: ByteBuffer?
        /// The first `x-request-id` value, and how many there were.
        var requestID: String?
        var requestIDCount = 0
        /// Where the `referer` and `user-agent` values are in `upstream` (for the access log).
        var referer: Range<Int>?
        var userAgent: Range<Int>?
        /// RFC 9113 size of the list so far.
        var size = 0
        var tooLarge = false
        /// A trailer section: every field goes to `upstream`.
        var isTrailers = false

        init() {}

        /// The value at `range` of `upstream`, as a String.
        func string(_ range: Range<Int>?) -> String? {
            guard let range else { return nil }
            return upstream.getString(at: upstream.readerIndex + range.lowerBound, length: range.count)
        }
    }

    enum Event {
        case request(streamID: Int32, head: RequestHead, endStream: Bool)
        case data(streamID: Int32, ByteBuffer, endStream: Bool)
        /// END_STREAM arrived without data (on an empty DATA frame) or with trailers (their field
        /// lines, `name: value\r\n` each).
        case end(streamID: Int32, trailers: ByteBuffer?)
        case streamClosed(streamID: Int32, errorCode: UInt32)
        case pingAck(UInt64)
        case goAwayReceived(errorCode: UInt32)
        /// More PING/SETTINGS (or RST_STREAM) frames than the settings allow.
        case flood(kind: String)
        /// A response's queued bytes were taken by nghttp2 (its queue shrank).
        case sendQueueShrank(streamID: Int32)
        /// The last frame of a response (END_STREAM) was sent.
        case responseSent(streamID: Int32)
    }

    /// Why `receive` failed: the session cannot go on.
    enum Failure: Error, CustomStringConvertible {
        /// nghttp2 refused the input or the call (its error code).
        case library(Int32)
        /// A frame RFC 9113 forbids that nghttp2 would have let through; it was not passed on.
        case violation(H2StreamHistory.Violation)

        var description: String {
            switch self {
            case .library(let code): String(cString: nghttp2_strerror(code))
            case .violation(let violation): violation.description
            }
        }

        var isFlood: Bool {
            guard case .library(let code) = self else { return false }
            return code == NGHTTP2_ERR_FLOODED.rawValue || code == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS.rawValue
        }

        var isBadPreface: Bool {
            guard case .library(let code) = self else { return false }
            return code == NGHTTP2_ERR_BAD_CLIENT_MAGIC.rawValue
        }

        /// The HTTP/2 error code that ends the connection.
        var errorCode: UInt32 {
            if isFlood { return 0xB }  // ENHANCE_YOUR_CALM
            if case .violation(let violation) = self { return violation.errorCode }
            return 0x1  // PROTOCOL_ERROR
        }
    }

    /// Body buffers in order. Most responses have one, held inline: a `CircularBuffer` allocates
    /// its storage (16 slots) as it is made, one allocation per response for nothing.
    struct BufferQueue {
        private var head: ByteBuffer?
        /// The buffers after `head`, once there are any.
        private var rest: CircularBuffer<ByteBuffer>?

        var isEmpty: Bool { head == nil }

        mutating func append(_ buffer: ByteBuffer) {
            if head == nil {
                head = buffer
            } else if rest == nil {
                rest = CircularBuffer(initialCapacity: 4)
                rest!.append(buffer)
            } else {
                rest!.append(buffer)
            }
        }

        /// Takes up to `length` bytes off the front of the first buffer (which goes once empty).
        mutating func readSliceOfFirst(upTo length: Int) -> ByteBuffer? {
            guard var first = head.take() else { return nil }
            let slice = first.readSlice(length: min(length, first.readableBytes))!
            if first.readableBytes > 0 {
                head = first
            } else if let next = rest?.popFirst() {
                head = next
            }
            return slice
        }
    }

    /// A response body waiting for nghttp2 to pull it into DATA frames.
    private struct SendQueue {
        var buffers = BufferQueue()
        var bytes = 0
        var ended = false
        var trailers: HTTPHeaders?
        /// Bytes `readBody` promised nghttp2 that `sendData` has not taken yet.
        var committed = 0
        /// nghttp2 was told there is nothing yet; `resume_data` is needed before it asks again.
        var deferred = false
    }

    private(set) var events: [Event] = []
    /// The array `takeEvents` hands out next, kept with its capacity (see `recycle`).
    private var spareEvents: [Event] = []
    /// The `nghttp2_nv` array of a response head, kept with its capacity.
    private var nameValues: [nghttp2_nv] = []
    /// While `produceOutput` runs: the bytes produced so far, and where a DATA payload large
    /// enough to be worth its own write goes (nil: copied into the bytes).
    private var output = ByteBuffer()
    private var outputWriter: ((ByteBuffer) -> Void)?
    let settings: Settings
    private var session: OpaquePointer!
    /// The header block being received. HEADERS and its CONTINUATIONs cannot interleave with
    /// another stream's (RFC 9113 6.10), so one is enough.
    private var head: (streamID: Int32, fields: RequestHead)?
    /// Changed in place through `sendQueues.values[index]`: each `sendQueues[id]!.field = ...`
    /// hashed the id again.
    private var sendQueues: [Int32: SendQueue] = [:]
    private let allocator: ByteBufferAllocator
    private var controlFrames: TokenBucket
    private var resets: TokenBucket
    /// Frame boundaries of the client's bytes, and what its past streams allow next.
    private var scanner = H2FrameScanner()
    private var history = H2StreamHistory()

    init(settings: Settings, allocator: ByteBufferAllocator) throws(Failure) {
        self.settings = settings
        self.allocator = allocator
        self.controlFrames = TokenBucket(burst: settings.controlFrameBurst, perSecond: settings.controlFrameRate)
        self.resets = TokenBucket(burst: settings.resetBurst, perSecond: settings.resetRate)

        var callbacks: OpaquePointer?
        nghttp2_session_callbacks_new(&callbacks)
        defer { nghttp2_session_callbacks_del(callbacks) }
        nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, h2OnBeginHeaders)
        nghttp2_session_callbacks_set_on_header_callback(callbacks, h2OnHeader)
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, h2OnFrameRecv)
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, h2OnDataChunk)
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, h2OnStreamClose)
        nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, h2OnFrameSend)
        nghttp2_session_callbacks_set_send_data_callback(callbacks, h2SendData)

        var option: OpaquePointer?
        nghttp2_option_new(&option)
        defer { nghttp2_option_del(option) }
        nghttp2_option_set_no_auto_window_update(option, 1)
        nghttp2_option_set_no_closed_streams(option, 1)
        nghttp2_option_set_stream_reset_rate_limit(option, UInt64(settings.resetBurst * 5), UInt64(settings.resetRate * 5))
        nghttp2_option_set_max_continuations(option, settings.maxContinuations)
        nghttp2_option_set_max_outbound_ack(option, 100)
        nghttp2_option_set_max_settings(option, 32)

        var created: OpaquePointer?
        let rv = nghttp2_session_server_new2(&created, callbacks, Unmanaged.passUnretained(self).toOpaque(), option)
        guard rv == 0, let created else { throw .library(rv) }
        session = created

        var entries = [
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue), value: settings.maxConcurrentStreams),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue), value: settings.initialWindowSize),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_FRAME_SIZE.rawValue), value: settings.maxFrameSize),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue), value: settings.maxHeaderListSize),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_ENABLE_PUSH.rawValue), value: 0),
        ]
        let settingsResult = nghttp2_submit_settings(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), &entries, entries.count)
        guard settingsResult == 0 else { throw .library(settingsResult) }
        if settings.connectionWindowSize > 65_535 {
            nghttp2_session_set_local_window_size(
                session, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, Int32(clamping: settings.connectionWindowSize))
        }
    }

    deinit {
        nghttp2_session_del(session)
    }

    // MARK: Input and output

    /// Feeds bytes from the client; the events they caused are in `events` afterwards.
    ///
    /// Each frame header is judged by the stream history first; a frame it refuses, and all
    /// after it, never reach nghttp2, and `receive` throws `.violation`.
    func receive(_ buffer: ByteBuffer) throws(Failure) {
        var violation: H2StreamHistory.Violation?
        let result = buffer.withUnsafeReadableBytes { bytes -> Int in
            let allowed = scanner.scan(bytes) { header in
                violation = history.receive(header)
                return violation == nil
            }
            guard allowed > 0, let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return 0 }
            return nghttp2_session_mem_recv(session, base, allowed)
        }
        if result < 0 { throw .library(Int32(result)) }
        // Unless nghttp2 already ended the session over an earlier frame of the same read.
        if let violation, nghttp2_session_want_read(session) != 0 { throw .violation(violation) }
    }

    /// Appends everything nghttp2 has to send to `buffer`; returns whether anything was added.
    @discardableResult
    func produceOutput(into buffer: inout ByteBuffer) -> Bool {
        produceOutput(into: &buffer, writingLargeData: nil)
    }

    /// The same; a response's DATA payload of at least `largeData` bytes is not copied: the
    /// bytes before it (its frame header last) and then its slice of the backend's buffer go to
    /// `write`, in order, and `buffer` goes on with what follows.
    @discardableResult
    func produceOutput(into buffer: inout ByteBuffer, writingLargeData write: ((ByteBuffer) -> Void)?) -> Bool {
        swap(&output, &buffer)
        defer { swap(&output, &buffer) }
        producedOutput = false
        if let write {
            withoutActuallyEscaping(write) { write in
                outputWriter = write
                drainSession()
                outputWriter = nil
            }
        } else {
            drainSession()
        }
        return producedOutput
    }

    private var producedOutput = false

    /// Takes nghttp2's frames into `output` (DATA payloads come through `sendData`).
    private func drainSession() {
        while true {
            var pointer: UnsafePointer<UInt8>?
            let count = nghttp2_session_mem_send(session, &pointer)
            guard count > 0, let pointer else { break }
            output.writeBytes(UnsafeRawBufferPointer(start: pointer, count: count))
            producedOutput = true
        }
    }

    /// DATA payloads from this size on are written as their own buffer (`produceOutput`).
    static let largeData = 2048

    /// The events so far; give the array back with `recycle` once they are handled.
    func takeEvents() -> [Event] {
        var taken: [Event] = []
        swap(&taken, &spareEvents)
        swap(&taken, &events)
        return taken
    }

    /// Keeps a handled array of events (emptied) for the next `takeEvents`: no allocation per batch.
    func recycle(_ handled: inout [Event]) {
        handled.removeAll(keepingCapacity: true)
        swap(&spareEvents, &handled)
    }

    var hasEvents: Bool { !events.isEmpty }

    /// False once the session has nothing left to do: GOAWAY exchanged and every stream closed.
    var isFinished: Bool { nghttp2_session_want_read(session) == 0 && nghttp2_session_want_write(session) == 0 }

    var wantsWrite: Bool { nghttp2_session_want_write(session) != 0 }

    // MARK: Flow control

    /// The backend took `count` bytes of the stream's upload: the client may send that much more.
    func consume(streamID: Int32, count: Int) {
        guard count > 0 else { return }
        if nghttp2_session_consume(session, streamID, count) != 0 {
            // The stream is gone; the connection's window still has to open.
            nghttp2_session_consume_connection(session, count)
        }
    }

    /// Bytes of the stream's response waiting to go out.
    func queuedBytes(streamID: Int32) -> Int {
        guard let index = sendQueues.index(forKey: streamID) else { return 0 }
        return sendQueues.values[index].bytes
    }

    /// Whether the client's windows stop the stream's queued response bytes from going out.
    func isBlockedByPeerWindow(streamID: Int32) -> Bool {
        guard let index = sendQueues.index(forKey: streamID), sendQueues.values[index].bytes > 0 else { return false }
        return nghttp2_session_get_stream_remote_window_size(session, streamID) <= 0
            || nghttp2_session_get_remote_window_size(session) <= 0
    }

    // MARK: Responses

    /// The response field whose value is new in every response: `x-request-id`.
    ///
    /// Why never indexed: nghttp2 adds every field it may to the HPACK dynamic table, and a value
    /// seen once is worth nothing there. One request-id entry per response filled the 4 KiB table
    /// with entries of the same name, which the encoder's lookup walks one by one (one hash
    /// chain) for every field of every response, and pushed the entries that do repeat (server,
    /// content-type, date) out of it. nghttp2 offers no "without indexing" flag; "never indexed"
    /// (RFC 7541 6.2.3) is the literal it has, and it is right for a per-request value. The
    /// fields the client decodes are the same.
    static let neverIndexed = RequestID.headerName

    /// Starts the response; with `hasBody`, DATA follows from `sendBody`/`finishBody`.
    func submitResponse(streamID: Int32, status: Int, headers: HTTPHeaders, hasBody: Bool) -> Bool {
        var fields: [(String, String)] = [(":status", String(status))]
        fields.reserveCapacity(headers.count + 1)
        for (name, value) in headers { fields.append((name.lowercased(), value)) }
        let rv: Int32 = Self.withNameValues(fields) { nva, count in
            submit(streamID: streamID, nva: nva, count: count, hasBody: hasBody)
        }
        return rv == 0
    }

    /// Pointers to the name and value bytes of a response's fields, for one `submitResponse`
    /// call: nghttp2 copies them (and lower-cases the names) before the call returns, so they
    /// need to live only that long.
    struct FieldList {
        fileprivate var nameValues: [nghttp2_nv]

        mutating func append(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
            append(name: name, value: value, flags: NGHTTP2_NV_FLAG_NONE)
        }

        /// A field whose value differs in every response (the request id): encoded as a literal
        /// never put in the HPACK dynamic table (see `H2Session.neverIndexed`).
        mutating func appendNeverIndexed(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
            append(name: name, value: value, flags: NGHTTP2_NV_FLAG_NO_INDEX)
        }

        private mutating func append(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, flags: nghttp2_nv_flag) {
            nameValues.append(
                nghttp2_nv(
                    name: Self.pointer(name), value: Self.pointer(value), namelen: name.count, valuelen: value.count,
                    flags: UInt8(flags.rawValue)))
        }

        private static let empty: StaticString = " "

        private static func pointer(_ bytes: UnsafeRawBufferPointer) -> UnsafeMutablePointer<UInt8> {
            UnsafeMutablePointer(mutating: (bytes.baseAddress ?? UnsafeRawPointer(empty.utf8Start)).assumingMemoryBound(to: UInt8.self))
        }
    }

    /// Starts the response, its fields given by `fields` (after `:status`) as pointers valid
    /// while it runs: the backend's head bytes as they were scanned, no String or array of
    /// fields in between. With `hasBody`, DATA follows from `sendBody`/`finishBody`.
    func submitResponse(streamID: Int32, status: Int, hasBody: Bool, fields: (inout FieldList) -> Void) -> Bool {
        var list = FieldList(nameValues: [])
        swap(&list.nameValues, &nameValues)
        defer {
            list.nameValues.removeAll(keepingCapacity: true)
            swap(&list.nameValues, &nameValues)
        }
        // Three digits (a scanned status is 100...999; the gateway's own too).
        let clamped = min(max(status, 100), 999)
        var digits: (UInt8, UInt8, UInt8) = (
            UInt8(truncatingIfNeeded: 48 + clamped / 100), UInt8(truncatingIfNeeded: 48 + clamped / 10 % 10),
            UInt8(truncatingIfNeeded: 48 + clamped % 10)
        )
        let statusName: StaticString = ":status"
        return withUnsafeBytes(of: &digits) { value in
            list.append(name: UnsafeRawBufferPointer(start: statusName.utf8Start, count: statusName.utf8CodeUnitCount), value: value)
            fields(&list)
            let rv = list.nameValues.withUnsafeMutableBufferPointer { nva in
                submit(streamID: streamID, nva: nva.baseAddress!, count: nva.count, hasBody: hasBody)
            }
            return rv == 0
        }
    }

    private func submit(streamID: Int32, nva: UnsafeMutablePointer<nghttp2_nv>, count: Int, hasBody: Bool) -> Int32 {
        guard hasBody else { return nghttp2_submit_response(session, streamID, nva, count, nil) }
        sendQueues[streamID] = SendQueue()
        var provider = nghttp2_data_provider()
        provider.read_callback = h2ReadBody
        let rv = nghttp2_submit_response(session, streamID, nva, count, &provider)
        if rv != 0 { sendQueues[streamID] = nil }
        return rv
    }

    func sendBody(streamID: Int32, _ buffer: ByteBuffer) {
        guard buffer.readableBytes > 0, let index = sendQueues.index(forKey: streamID) else { return }
        sendQueues.values[index].buffers.append(buffer)
        sendQueues.values[index].bytes += buffer.readableBytes
        resumeIfDeferred(streamID, at: index)
    }

    func finishBody(streamID: Int32, trailers: HTTPHeaders?) {
        guard let index = sendQueues.index(forKey: streamID) else { return }
        sendQueues.values[index].ended = true
        if let trailers, !trailers.isEmpty { sendQueues.values[index].trailers = trailers }
        resumeIfDeferred(streamID, at: index)
    }

    private func resumeIfDeferred(_ streamID: Int32, at index: Dictionary<Int32, SendQueue>.Index) {
        if sendQueues.values[index].deferred {
            sendQueues.values[index].deferred = false
            nghttp2_session_resume_data(session, streamID)
        }
    }

    func resetStream(streamID: Int32, errorCode: UInt32) {
        nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), streamID, errorCode)
    }

    // MARK: Connection

    /// GOAWAY with the largest stream id: "stop opening streams soon" (RFC 9113 6.8).
    func submitShutdownNotice() {
        nghttp2_submit_shutdown_notice(session)
    }

    /// GOAWAY with the last stream the gateway took up; later ones are refused.
    func submitGoAway(errorCode: UInt32) {
        nghttp2_submit_goaway(
            session, UInt8(NGHTTP2_FLAG_NONE.rawValue), nghttp2_session_get_last_proc_stream_id(session), errorCode, nil, 0)
    }

    /// Ends the session: GOAWAY with `errorCode`, and nothing more is read.
    func terminate(errorCode: UInt32) {
        nghttp2_session_terminate_session(session, errorCode)
    }

    func submitPing(_ opaque: UInt64) {
        var bytes = opaque.bigEndian
        withUnsafeBytes(of: &bytes) { raw in
            _ = nghttp2_submit_ping(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), raw.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
    }

    var lastProcessedStreamID: Int32 { nghttp2_session_get_last_proc_stream_id(session) }

    // MARK: Callback bodies (record only)

    fileprivate func beginHeaders(streamID: Int32, isRequest: Bool) {
        let fields = RequestHead()
        fields.isTrailers = !isRequest
        fields.upstream = allocator.buffer(capacity: isRequest ? 512 : 128)
        head = (streamID, fields)
    }

    fileprivate func header(streamID: Int32, name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        guard let (id, fields) = head, id == streamID else { return }
        fields.size += name.count + value.count + 32
        if fields.size > Int(settings.maxHeaderListSize) {
            fields.tooLarge = true
            return
        }
        fields.add(name: name, value: value)
    }

    fileprivate func frameReceived(_ frame: UnsafePointer<nghttp2_frame>) {
        let hd = frame.pointee.hd
        let endStream = hd.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
        switch UInt32(hd.type) {
        case NGHTTP2_HEADERS.rawValue:
            guard case (let streamID, let head)? = self.head.take(), streamID == hd.stream_id else { return }
            if frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST {
                head.writeRequestLineIfNeeded()
                events.append(.request(streamID: hd.stream_id, head: head, endStream: endStream))
            } else if endStream {
                // Trailers past the size limit are dropped whole rather than passed on cut short.
                events.append(.end(streamID: hd.stream_id, trailers: head.tooLarge ? nil : head.upstream))
            }
        case NGHTTP2_DATA.rawValue:
            if endStream { events.append(.end(streamID: hd.stream_id, trailers: nil)) }
        case NGHTTP2_PING.rawValue:
            if hd.flags & UInt8(NGHTTP2_FLAG_ACK.rawValue) != 0 {
                let opaque = withUnsafeBytes(of: frame.pointee.ping.opaque_data) { $0.loadUnaligned(as: UInt64.self) }
                events.append(.pingAck(UInt64(bigEndian: opaque)))
            } else if !controlFrames.take() {
                events.append(.flood(kind: "PING flood"))
            }
        case NGHTTP2_SETTINGS.rawValue:
            if hd.flags & UInt8(NGHTTP2_FLAG_ACK.rawValue) == 0, !controlFrames.take() {
                events.append(.flood(kind: "SETTINGS flood"))
            }
        case NGHTTP2_RST_STREAM.rawValue:
            if !resets.take() { events.append(.flood(kind: "rapid reset (RST_STREAM flood)")) }
        case NGHTTP2_GOAWAY.rawValue:
            events.append(.goAwayReceived(errorCode: frame.pointee.goaway.error_code))
        default:
            break
        }
    }


    fileprivate func frameSent(_ frame: UnsafePointer<nghttp2_frame>) {
        let hd = frame.pointee.hd
        let type = UInt32(hd.type)
        guard type == NGHTTP2_DATA.rawValue || type == NGHTTP2_HEADERS.rawValue,
            hd.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
        else { return }
        events.append(.responseSent(streamID: hd.stream_id))
    }

    fileprivate func dataChunk(streamID: Int32, _ bytes: UnsafeBufferPointer<UInt8>) {
        var buffer = allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        events.append(.data(streamID: streamID, buffer, endStream: false))
    }

    fileprivate func streamClosed(streamID: Int32, errorCode: UInt32) {
        if head?.streamID == streamID { head = nil }
        sendQueues[streamID] = nil
        events.append(.streamClosed(streamID: streamID, errorCode: errorCode))
    }

    /// nghttp2 asks for up to `length` bytes of the stream's body. They are not copied here
    /// (`NGHTTP2_DATA_FLAG_NO_COPY`): `sendData` writes them from the queue's buffers right after.
    fileprivate func readBody(streamID: Int32, length: Int, flags: UnsafeMutablePointer<UInt32>) -> Int {
        guard let index = sendQueues.index(forKey: streamID) else {
            return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
        }
        // In place: a copy of the queue would copy its buffers on the first change.
        return readBody(streamID: streamID, length: length, flags: flags, queue: &sendQueues.values[index])
    }

    private func readBody(streamID: Int32, length: Int, flags: UnsafeMutablePointer<UInt32>, queue: inout SendQueue) -> Int {
        let take = min(length, queue.bytes - queue.committed)
        queue.committed += take
        if take > 0 {
            flags.pointee |= NGHTTP2_DATA_FLAG_NO_COPY.rawValue
            events.append(.sendQueueShrank(streamID: streamID))
        }
        if queue.committed == queue.bytes, queue.ended {
            flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
            if let trailers = queue.trailers {
                flags.pointee |= NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue
                let fields = trailers.map { ($0.name.lowercased(), $0.value) }
                _ = Self.withNameValues(fields) { nva, count in nghttp2_submit_trailer(session, streamID, nva, count) }
            }
        } else if take == 0 {
            queue.deferred = true
            return Int(NGHTTP2_ERR_DEFERRED.rawValue)
        }
        return take
    }

    /// The DATA frame nghttp2 packed after `readBody` said NO_COPY: its header, then `length`
    /// bytes off the front of the stream's queue. Small payloads are copied into the output
    /// (one copy, where nghttp2's own buffer made two); large ones go out as slices of the
    /// backend's buffers.
    fileprivate func sendData(streamID: Int32, header: UnsafePointer<UInt8>, length: Int) -> Int32 {
        guard let index = sendQueues.index(forKey: streamID), sendQueues.values[index].committed >= length else {
            return Int32(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue)
        }
        sendData(header: header, length: length, queue: &sendQueues.values[index])
        return 0
    }

    private func sendData(header: UnsafePointer<UInt8>, length: Int, queue: inout SendQueue) {
        output.writeBytes(UnsafeRawBufferPointer(start: header, count: H2FrameScanner.headerLength))
        producedOutput = true
        queue.committed -= length
        queue.bytes -= length
        var remaining = length
        let large = outputWriter != nil && length >= Self.largeData
        if large, output.readableBytes > 0 {
            outputWriter!(output)
            output = allocator.buffer(capacity: 0)
        }
        while remaining > 0, let slice = queue.buffers.readSliceOfFirst(upTo: remaining) {
            if large {
                outputWriter!(slice)
            } else {
                output.writeImmutableBuffer(slice)
            }
            remaining -= slice.readableBytes
        }
    }

    // MARK: Header fields for nghttp2

    /// Lays the fields out in one buffer and hands nghttp2 an array of `nghttp2_nv` pointing into
    /// it; nghttp2 copies them during the call.
    private static func withNameValues<R>(_ fields: [(String, String)], _ body: (UnsafeMutablePointer<nghttp2_nv>, Int) -> R) -> R {
        var storage: [UInt8] = []
        storage.reserveCapacity(fields.reduce(0) { $0 + $1.0.utf8.count + $1.1.utf8.count })
        var offsets: [(Int, Int, Int, Int)] = []
        offsets.reserveCapacity(fields.count)
        var flags: [UInt8] = []
        flags.reserveCapacity(fields.count)
        for (name, value) in fields {
            let nameStart = storage.count
            storage.append(contentsOf: name.utf8)
            let valueStart = storage.count
            storage.append(contentsOf: value.utf8)
            offsets.append((nameStart, valueStart - nameStart, valueStart, storage.count - valueStart))
            flags.append(UInt8((name == neverIndexed ? NGHTTP2_NV_FLAG_NO_INDEX : NGHTTP2_NV_FLAG_NONE).rawValue))
        }
        if storage.isEmpty { storage.append(0) }
        return storage.withUnsafeMutableBufferPointer { bytes in
            var nva = offsets.indices.map { index in
                let field = offsets[index]
                return nghttp2_nv(
                    name: bytes.baseAddress! + field.0, value: bytes.baseAddress! + field.2,
                    namelen: field.1, valuelen: field.3, flags: flags[index])
            }
            return nva.withUnsafeMutableBufferPointer { body($0.baseAddress!, $0.count) }
        }
    }
}

// MARK: C callbacks: recover the session and record.

private func h2Session(_ userData: UnsafeMutableRawPointer?) -> H2Session {
    Unmanaged<H2Session>.fromOpaque(userData!).takeUnretainedValue()
}

private func h2OnBeginHeaders(
    _ session: OpaquePointer?, _ frame: UnsafePointer<nghttp2_frame>?, _ userData: UnsafeMutableRawPointer?
) -> Int32 {
    guard let frame else { return 0 }
    h2Session(userData).beginHeaders(
        streamID: frame.pointee.hd.stream_id,
        isRequest: frame.pointee.hd.type == UInt8(NGHTTP2_HEADERS.rawValue) && frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST)
    return 0
}

private func h2OnHeader(
    _ session: OpaquePointer?, _ frame: UnsafePointer<nghttp2_frame>?,
    _ name: UnsafePointer<UInt8>?, _ nameLength: Int, _ value: UnsafePointer<UInt8>?, _ valueLength: Int,
    _ flags: UInt8, _ userData: UnsafeMutableRawPointer?
) -> Int32 {
    guard let frame else { return 0 }
    h2Session(userData).header(
        streamID: frame.pointee.hd.stream_id,
        name: UnsafeRawBufferPointer(start: name, count: nameLength),
        value: UnsafeRawBufferPointer(start: value, count: valueLength)
    )
    return 0
}

private func h2OnFrameRecv(
    _ session: OpaquePointer?, _ frame: UnsafePointer<nghttp2_frame>?, _ userData: UnsafeMutableRawPointer?
) -> Int32 {
    guard let frame else { return 0 }
    h2Session(userData).frameReceived(frame)
    return 0
}

private func h2OnFrameSend(
    _ session: OpaquePointer?, _ frame: UnsafePointer<nghttp2_frame>?, _ userData: UnsafeMutableRawPointer?
) -> Int32 {
    guard let frame else { return 0 }
    h2Session(userData).frameSent(frame)
    return 0
}

private func h2OnDataChunk(
    _ session: OpaquePointer?, _ flags: UInt8, _ streamID: Int32, _ data: UnsafePointer<UInt8>?, _ length: Int,
    _ userData: UnsafeMutableRawPointer?
) -> Int32 {
    h2Session(userData).dataChunk(streamID: streamID, UnsafeBufferPointer(start: data, count: length))
    return 0
}

private func h2OnStreamClose(
    _ session: OpaquePointer?, _ streamID: Int32, _ errorCode: UInt32, _ userData: UnsafeMutableRawPointer?
) -> Int32 {
    h2Session(userData).streamClosed(streamID: streamID, errorCode: errorCode)
    return 0
}

private func h2ReadBody(
    _ session: OpaquePointer?, _ streamID: Int32, _ buffer: UnsafeMutablePointer<UInt8>?, _ length: Int,
    _ flags: UnsafeMutablePointer<UInt32>?, _ source: UnsafeMutablePointer<nghttp2_data_source>?,
    _ userData: UnsafeMutableRawPointer?
) -> Int {
    guard let flags else { return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue) }
    return h2Session(userData).readBody(streamID: streamID, length: length, flags: flags)
}

private func h2SendData(
    _ session: OpaquePointer?, _ frame: UnsafeMutablePointer<nghttp2_frame>?, _ header: UnsafePointer<UInt8>?, _ length: Int,
    _ source: UnsafeMutablePointer<nghttp2_data_source>?, _ userData: UnsafeMutableRawPointer?
) -> Int32 {
    guard let frame, let header else { return Int32(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue) }
    // No padding is ever asked for (no select_padding callback), so the frame is header + payload.
    return h2Session(userData).sendData(streamID: frame.pointee.hd.stream_id, header: header, length: length)
}

/// A burst of tokens refilled at a steady rate: how many frames of a kind a client may send.
struct TokenBucket {
    let burst: Double
    let perSecond: Double
    private var tokens: Double
    private var refilled = NIODeadline.now()

    init(burst: Int, perSecond: Int) {
        self.burst = Double(burst)
        self.perSecond = Double(perSecond)
        self.tokens = Double(burst)
    }

    /// Takes one token; false when none is left.
    mutating func take(now: NIODeadline = .now()) -> Bool {
        let elapsed = max(0, Double((now - refilled).nanoseconds) / 1e9)
        tokens = min(burst, tokens + elapsed * perSecond)
        refilled = now
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}

// MARK: Request fields as the backend's head

extension H2Session.RequestHead {
    /// Takes one field from nghttp2 (see `RequestHead`).
    func add(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        if isTrailers {
            writeLine(name, value)
            return
        }
        if name.first == UInt8(ascii: ":") {
            // Pseudo-header fields come first (nghttp2 refuses a request otherwise).
            if Self.equals(name, ":method") {
                method = String(decoding: value, as: UTF8.self)
            } else if Self.equals(name, ":path") {
                path = String(decoding: value, as: UTF8.self)
            } else if Self.equals(name, ":authority") {
                authority = String(decoding: value, as: UTF8.self)
            } else if Self.equals(name, ":scheme") {
                scheme = String(decoding: value, as: UTF8.self)
            }
            return
        }
        writeRequestLineIfNeeded()
        // HTTP/2 names are lower case (nghttp2 refuses others): exact comparisons, by length first.
        switch name.count {
        case 2:
            if Self.equals(name, "te") { return }  // HTTP/2's own (RFC 9113 8.2.2)
        case 4:
            if Self.equals(name, "host") {
                // :authority takes precedence (RFC 9113 8.3.1) and is the backend's Host.
                if authority != nil { return }
                if host == nil { host = String(decoding: value, as: UTF8.self) }
            }
        case 6:
            if Self.equals(name, "cookie") {
                // RFC 9113 8.2.3: crumbs are joined again for an HTTP/1.1 hop.
                if cookie == nil {
                    cookie = ByteBuffer()
                    cookie!.reserveCapacity(value.count + 64)
                } else {
                    cookie!.writeStaticString("; ")
                }
                cookie!.writeBytes(value)
                return
            }
            if Self.equals(name, "expect") { return }
        case 7:
            if Self.equals(name, "trailer") {
                announcesTrailers = true
                return
            }
            if Self.equals(name, "upgrade") { return }
            if Self.equals(name, "referer") {
                referer = writeLine(name, value)
                return
            }
        case 10:
            if Self.equals(name, "connection") || Self.equals(name, "keep-alive") { return }
            if Self.equals(name, "user-agent") {
                userAgent = writeLine(name, value)
                return
            }
        case 12:
            if Self.equals(name, "x-request-id") {
                requestIDCount += 1
                if requestIDCount == 1 { requestID = String(decoding: value, as: UTF8.self) }
                return
            }
        case 14:
            if Self.equals(name, "content-length") {
                if contentLength == nil { contentLength = Self.decimal(value) }
                return
            }
        case 15:
            if Self.equals(name, "x-forwarded-for") {
                if forwardedFor == nil {
                    forwardedFor = ByteBuffer()
                    forwardedFor!.reserveCapacity(value.count + 64)
                }
                forwardedFor!.writeBytes(value)
                forwardedFor!.writeStaticString(", ")
                return
            }
        case 16:
            if Self.equals(name, "x-forwarded-host") || Self.equals(name, "proxy-connection") { return }
        case 17:
            if Self.equals(name, "x-forwarded-proto") || Self.equals(name, "transfer-encoding") { return }
        case 18:
            if Self.equals(name, "proxy-authenticate") { return }
        case 19:
            if Self.equals(name, "proxy-authorization") { return }
        default:
            break
        }
        writeLine(name, value)
    }

    /// The request line and the Host from `:authority`, once the pseudo-header fields are over.
    func writeRequestLineIfNeeded() {
        guard !requestLineWritten, !isTrailers else { return }
        requestLineWritten = true
        upstream.writeString(method)
        upstream.writeStaticString(" ")
        upstream.writeString(path)
        upstream.writeStaticString(" HTTP/1.1\r\n")
        if let authority {
            upstream.writeStaticString("host: ")
            upstream.writeString(authority)
            upstream.writeStaticString("\r\n")
        }
    }

    /// Writes `name: value\r\n`; returns where the value is.
    @discardableResult
    private func writeLine(_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) -> Range<Int> {
        upstream.writeBytes(name)
        upstream.writeStaticString(": ")
        let start = upstream.readableBytes
        upstream.writeBytes(value)
        let end = upstream.readableBytes
        upstream.writeStaticString("\r\n")
        return start..<end
    }

    private static func equals(_ bytes: UnsafeRawBufferPointer, _ literal: StaticString) -> Bool {
        guard bytes.count == literal.utf8CodeUnitCount else { return false }
        return literal.withUTF8Buffer { bytes.elementsEqual($0) }
    }

    /// A non-negative decimal that fits an Int (nghttp2 checked content-length's digits).
    private static func decimal(_ bytes: UnsafeRawBufferPointer) -> Int? {
        guard !bytes.isEmpty, bytes.count <= 18 else { return nil }
        var value = 0
        for byte in bytes {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return value
    }
}

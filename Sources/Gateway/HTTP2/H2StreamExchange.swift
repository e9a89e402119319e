import NIOCore
import NIOHTTP1
import ProxyRules
import RequestControl

/// One HTTP/2 stream, which is one request: routed, admitted through RequestControl and proxied
/// to an HTTP/1.1 backend over the loop's connection pool, like `ProxyHandler` does for an
/// HTTP/1.1 request.
///
/// Upload backpressure: DATA is consumed (the client's window reopened) once it is written to the
/// backend connection and flushed while that connection is writable, else when it becomes
/// writable again: a backend that does not read holds the client at its window (plus the
/// connection's write buffer), with no promise or closure per chunk. Download backpressure: while the stream's response queue
/// in the session holds more than `sendQueueLimit` bytes, or the client connection is not
/// writable, reads from the backend are held.
final class H2StreamExchange: UpstreamDelegate, ExchangeCarrier {
    private enum Phase {
        /// Admitted; waiting for a backend connection.
        case connecting
        /// Request forwarded to the backend; response streaming.
        case proxying
        /// The response is complete (or was the gateway's own); waiting for the stream to close.
        case responded
        case closed
    }

    let streamID: Int32
    private unowned let connection: H2ConnectionHandler
    let loop: LoopContext
    private var phase = Phase.connecting
    /// The stream's way through the gateway (routing, admission, backend); shared with HTTP/1.1.
    private var core: ExchangeCore!
    private var upstream: UpstreamConnection? { core.upstream }
    /// The backend's head, HTTP/1.1 bytes (written again on a retry).
    private var upstreamHead = ByteBuffer()
    private(set) var requestIsIdempotent = false
    /// The body goes to the backend chunked (its length is unknown, or it has trailers).
    private var chunkedUpload = false
    /// Frames the backend's response (the payload of a chunked body, for DATA frames).
    private var responseReader: BackendResponseReader?
    /// Body chunks waiting for the backend connection (each frees its size in the client's window).
    private var pendingBody: [ByteBuffer] = []
    /// Upload bytes written to the backend connection and not yet given back to the client's
    /// window (see the type's comment).
    private var writtenUnconsumed = 0
    /// Bytes were written to the backend since the last flush.
    private(set) var needsUpstreamFlush = false
    private(set) var requestEnded = false
    private var requestBodyBytes = 0
    /// Upload bytes read and dropped after the response was complete.
    private var discardedBytes = 0
    /// The request's trailer field lines (`name: value\r\n` each).
    private var requestTrailers: ByteBuffer?
    /// The request's end was written to the current backend connection.
    private var endForwarded = false
    private(set) var requestBodyForwarded = false
    private(set) var requestHasBody = false
    private var upstreamReusable = true
    private var headRequest = false
    private(set) var responseStatus: Int?
    private(set) var responseStarted = false
    /// When the backend must have answered (or sent more of its body) by; checked by the
    /// connection's timer.
    private(set) var responseDeadline = NIODeadline.distantFuture
    /// Set while the client's flow-control window holds back the response.
    var stalledSince: NIODeadline?
    /// Response bytes left the queue since the connection's last check: not stalled, only slow.
    var progressed = false
    /// Upload bytes received and not yet given back to the client's window (on their way to the
    /// backend). While there are some, a quiet client may be waiting for its window.
    private var unconsumedBytes = 0
    /// Upload bytes arrived since the connection's last check.
    private var bodyProgressed = false
    /// Since when the upload has been quiet with its window open; checked by the connection's timer.
    private var bodyQuietSince: NIODeadline?
    /// The stream's request id (see `RequestID`).
    private var requestID = RequestIDValue(prefix: 0, counter: 0)
    /// The stream's access-log record while it runs; nil without an access log.
    private var logRecord: AccessLogRecord?
    /// Response body bytes handed to the session.
    private var responseBodyBytes = 0

    /// A response queue above this holds the backend's reads.
    static let sendQueueLimit = 64 * 1024
    /// How much of an upload is read and dropped after the gateway answered on its own, before
    /// the stream is reset.
    static let discardLimit = 1 << 20

    init(streamID: Int32, connection: H2ConnectionHandler, loop: LoopContext) {
        self.streamID = streamID
        self.connection = connection
        self.loop = loop
        self.core = ExchangeCore(loop: loop, carrier: self)
    }

    var deploymentName: String? { core.route?.deployment.name }

    // MARK: Request

    func start(_ head: H2Session.RequestHead, endStream: Bool, clientAddress: String, clientPort: Int, scheme: String) {
        requestEnded = endStream
        headRequest = head.method == "HEAD"
        requestIsIdempotent = HTTPMethod(rawValue: head.method).isIdempotent
        requestID = RequestID.resolve(given: head.requestID, count: head.requestIDCount, generator: &loop.requestIDs)
        // Asked first: the id as a String is made only for a log that writes lines.
        if let accessLog = loop.accessLog, accessLog.isWriting {
            logRecord = accessLog.start(
                requestID: requestID.string, clientIP: clientAddress, clientPort: clientPort, method: head.method,
                path: head.path, httpVersion: "HTTP/2", referer: head.string(head.referer), userAgent: head.string(head.userAgent))
        }
        if head.tooLarge {
            respondLocally(.requestHeaderFieldsTooLarge, reason: "request header fields too large")
            return
        }
        if head.method == "CONNECT" {
            respondLocally(.notImplemented, reason: "CONNECT is not supported")
            return
        }
        let router = loop.router
        let authority = head.authority ?? head.host
        let host = router.usesHosts ? authority.flatMap(HostName.normalize) : nil
        let declaredLength = head.contentLength
        if let answer = core.admit(
            router.route(host: host, path: Substring(head.path), method: head.method), declaredLength: declaredLength,
            noRoute: { "no route for host \(authority ?? "(none)") and path \(head.path)" }, log: &logRecord)
        {
            respondLocally(answer.status, reason: answer.reason, retryAfter: answer.retryAfter, extraHeaders: answer.extraHeaders)
            return
        }

        requestHasBody = !endStream
        // HTTP/1.1 carries request trailers only in a chunked body. A body of unknown length is
        // chunked anyway; one with a length goes chunked too when the client announced trailers
        // with a `trailer` field, or they would be dropped. (nghttp2 still holds the client to
        // its content-length.)
        let body: ForwardedRequest.Body =
            if endStream { .none }
            else if let declaredLength, !head.announcesTrailers { .length(declaredLength) }
            else { .chunked }
        chunkedUpload = body == .chunked
        upstreamHead = Self.takeCompleteHead(head, body: body, clientAddress: clientAddress, scheme: scheme, requestID: requestID)
        core.connectUpstream()
    }

    /// The backend's head: the request line and fields the session wrote as they came, then
    /// the rest of `ForwardedRequestHead`'s rules: the joined cookie, `X-Forwarded-For` (the
    /// client's chain and the client), `-Proto`, `-Host`, `X-Request-Id`, and the framing.
    ///
    /// The session's bytes are taken out of `head` (which is read no more after this) and become
    /// the backend's head: no longer shared, the buffer grows in place, where a copy into a second
    /// buffer cost an allocation and a copy per request. Called once per head.
    static func takeCompleteHead(
        _ head: H2Session.RequestHead, body: ForwardedRequest.Body, clientAddress: String, scheme: String,
        requestID: RequestIDValue
    ) -> ByteBuffer {
        var out = head.upstream
        head.upstream = ByteBuffer()
        out.reserveCapacity(out.writerIndex + 192 + (head.cookie?.readableBytes ?? 0))
        if let cookie = head.cookie {
            out.writeStaticString("cookie: ")
            out.writeImmutableBuffer(cookie)
            out.writeStaticString("\r\n")
        }
        out.writeStaticString("x-forwarded-for: ")
        if let forwardedFor = head.forwardedFor { out.writeImmutableBuffer(forwardedFor) }
        out.writeString(clientAddress)
        out.writeStaticString("\r\nx-forwarded-proto: ")
        out.writeString(scheme)
        out.writeStaticString("\r\n")
        if let host = head.authority ?? head.host {
            out.writeStaticString("x-forwarded-host: ")
            out.writeString(host)
            out.writeStaticString("\r\n")
        }
        out.writeStaticString("x-request-id: ")
        requestID.withBytes { _ = out.writeBytes($0) }
        out.writeStaticString("\r\n")
        ForwardedRequest.writeFraming(
            body, lengthRequired: head.method == "POST" || head.method == "PUT" || head.method == "PATCH", into: &out)
        return out
    }

    func receiveBody(_ buffer: ByteBuffer) {
        let count = buffer.readableBytes
        requestBodyBytes += count
        unconsumedBytes += count
        bodyProgressed = true
        if phase == .connecting || phase == .proxying, let maxBody = loop.limits.maxBodyBytes, requestBodyBytes > maxBody {
            consumed(count)
            failExchange(status: .payloadTooLarge, reason: "request body exceeds \(maxBody) bytes", backendFailed: false)
            return
        }
        switch phase {
        case .connecting:
            pendingBody.append(buffer)
        case .proxying:
            forwardBody(buffer)
        case .responded, .closed:
            // The answer was the gateway's own (or is complete): the rest is dropped, up to a point.
            consumed(count)
            discardedBytes += count
            if discardedBytes > Self.discardLimit { connection.resetStream(streamID, errorCode: 0x8) }  // CANCEL
        }
    }

    func receiveEnd(trailers: ByteBuffer?) {
        requestEnded = true
        requestTrailers = trailers
        switch phase {
        case .connecting:
            break  // `attach` writes the end
        case .proxying:
            forwardEnd()
            endForwarded = true
            flushUpstream()
            armResponseDeadline()
        case .responded, .closed:
            break
        }
    }

    /// Writes a body chunk to the backend (with chunk framing when the upload is chunked); it
    /// counts against the client's window until `flushUpstream` finds the connection writable.
    private func forwardBody(_ buffer: ByteBuffer) {
        guard let upstream else {
            consumed(buffer.readableBytes)
            return
        }
        let channel = upstream.channel
        let count = buffer.readableBytes
        requestBodyForwarded = true
        guard count > 0 else { return }
        if chunkedUpload {
            var size = channel.allocator.buffer(capacity: 12)
            size.writeChunkSize(count)
            channel.write(size, promise: nil)
            channel.write(buffer, promise: nil)
            channel.write(channel.allocator.buffer(staticString: "\r\n"), promise: nil)
        } else {
            channel.write(buffer, promise: nil)
        }
        writtenUnconsumed += count
        markForFlush()
    }

    /// Writes the end of the upload: the last chunk and any trailers, when chunked.
    private func forwardEnd() {
        guard chunkedUpload, let upstream else { return }
        let channel = upstream.channel
        var last = channel.allocator.buffer(capacity: 5 + (requestTrailers?.readableBytes ?? 0))
        last.writeStaticString("0\r\n")
        if let trailers = requestTrailers { last.writeImmutableBuffer(trailers) }
        last.writeCRLF()
        channel.write(last, promise: nil)
        markForFlush()
    }

    private func markForFlush() {
        guard !needsUpstreamFlush else { return }
        needsUpstreamFlush = true
        connection.needsUpstreamFlush(self)
    }

    /// The end of a batch of DATA frames: push what was written to the backend, and give the
    /// client's window back if the backend connection takes the bytes.
    func flushUpstream() {
        needsUpstreamFlush = false
        guard case .proxying = phase, let upstream else { return }
        upstream.channel.flush()
        if upstream.channel.isWritable { releaseWritten() }
    }

    /// Upload bytes on their way to the backend no longer count against the client's window.
    private func releaseWritten() {
        guard writtenUnconsumed > 0 else { return }
        let count = writtenUnconsumed
        writtenUnconsumed = 0
        consumed(count)
    }

    // MARK: Backend

    func attach(_ connection: UpstreamConnection) {
        guard upstreamHead.readableBytes > 0 else { return }
        connection.handler.delegate = self
        phase = .proxying
        logRecord?.backend = connection.backend
        responseReader = BackendResponseReader(
            requestIsHead: headRequest, keepChunkFraming: false, maxHeadBytes: ProxyHandler.maxResponseHeadBytes)
        connection.channel.write(upstreamHead, promise: nil)
        if !pendingBody.isEmpty {
            for buffer in pendingBody { forwardBody(buffer) }
            pendingBody.removeAll()
        }
        // Also a retry on a fresh connection: the end went to the connection that failed.
        endForwarded = false
        if requestEnded {
            forwardEnd()
            endForwarded = true
        }
        flushUpstream()
        if requestEnded { armResponseDeadline() }
    }

    var clientIsWritable: Bool {
        connection.isWritable && connection.queuedBytes(streamID: streamID) < Self.sendQueueLimit
    }

    /// The session took bytes out of this stream's response queue.
    func sendQueueShrank() {
        progressed = true
        resumeIfWritable()
    }

    /// The client connection (or this stream's queue) can take bytes again.
    func resumeIfWritable() {
        if clientIsWritable { upstream?.handler.resumeReadingIfNeeded() }
    }

    func upstreamReadComplete() {
        connection.scheduleFlush()
    }

    func upstreamWritabilityChanged(isWritable: Bool) {
        // The backend took the bytes that filled the connection's buffer.
        if isWritable, case .proxying = phase { releaseWritten() }
    }

    func upstreamReceived(_ bytes: ByteBuffer) {
        guard case .proxying = phase, var reader = responseReader.take() else { return }
        armResponseDeadline()
        var ended: ByteBuffer?? = .none
        do {
            try reader.read(bytes, scratch: &loop.headFields) { event in
                switch event {
                case .head(let head, let headBytes, let fields, let framing):
                    responseHead(head, bytes: headBytes, fields: fields, framing: framing)
                case .body(let buffer):
                    responseBodyBytes += buffer.readableBytes
                    connection.sendBody(streamID: streamID, buffer)
                case .end(let trailers):
                    ended = .some(trailers)
                }
            }
        } catch {
            guard case .proxying = phase else { return }
            if case .some(let trailers) = ended {
                upstreamReusable = false
                finish(trailers: trailers)
            } else if let failure = error as? BackendResponseReader.Failure, case .malformed = failure {
                failExchange(status: .badGateway, reason: "backend sent a \(failure)", backendFailed: true)
            } else {
                core.backendClosed(error: nil)
            }
            return
        }
        guard case .proxying = phase else { return }
        if case .some(let trailers) = ended {
            finish(trailers: trailers)
        } else {
            responseReader = reader
        }
    }

    private func responseHead(_ head: HTTP1ResponseHead, bytes: ByteBuffer, fields: [HTTP1Field], framing: HTTP1BodyFraming) {
        // Interim responses (100, 103) are the backend's business with the gateway.
        if head.status < 200 { return }
        let keepAlive = head.minorVersion == 0 ? head.connection.keepAlive && !head.connection.close : !head.connection.close
        if !keepAlive || framing == .untilClose { upstreamReusable = false }
        responseStatus = head.status
        responseStarted = true
        let hasBody = !headRequest && head.status != 204 && head.status != 304
        // The backend's names and values go to nghttp2 as they were scanned (it copies them and
        // lower-cases the names): no String per field, no list of fields in between.
        let submitted = bytes.withUnsafeReadableBytes { raw in
            requestID.withBytes { id in
                connection.submitResponse(streamID: streamID, status: head.status, hasBody: hasBody) { list in
                    for field in fields where ForwardedResponseHead.keeps(field, of: head, fields: fields, bytes: raw) {
                        list.append(name: UnsafeRawBufferPointer(rebasing: raw[field.name]), value: UnsafeRawBufferPointer(rebasing: raw[field.value]))
                    }
                    list.appendNeverIndexed(name: UnsafeRawBufferPointer(Self.requestIDName), value: id)
                }
            }
        }
        if !submitted {
            failExchange(status: .badGateway, reason: "response head could not be sent", backendFailed: false)
        }
    }

    private static var requestIDName: UnsafeRawBufferPointer {
        let name: StaticString = "x-request-id"
        return UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount)
    }

    /// The backend connection closed: a body that runs until the close ends here; otherwise the
    /// shared rules decide.
    func upstreamClosed(error: Error?) {
        // Whatever was written to it is gone: the client's window opens for it all the same.
        releaseWritten()
        if case .proxying = phase, let reader = responseReader, reader.readsUntilClose {
            _ = core.takeUpstream()
            upstreamReusable = false
            finish(trailers: nil)
            return
        }
        core.backendClosed(error: error)
    }

    // MARK: ExchangeCarrier

    /// HTTP/2 streams never become tunnels here (extended CONNECT is not offered).
    var needsOwnConnection: Bool { false }

    var isConnecting: Bool { phase == .connecting }
    var isProxying: Bool { phase == .proxying }
    func enterConnecting() {
        releaseWritten()
        phase = .connecting
    }

    // MARK: Finishing

    private func finish(trailers section: ByteBuffer?) {
        let trailers = section.map(Self.fields(of:))
        responseReader = nil
        responseDeadline = .distantFuture
        releaseWritten()
        core.finishWithBackend(reusable: upstreamReusable)
        phase = .responded
        discardedBytes = 0
        connection.finishBody(streamID: streamID, trailers: trailers)
    }

    /// The response's last frame went out. A client still uploading is told to stop with
    /// RST_STREAM(NO_ERROR) (RFC 9113 8.1); the response it has is complete.
    func responseSent() {
        if !requestEnded { connection.resetStream(streamID, errorCode: 0) }
    }

    /// Ends the exchange with the gateway's own answer, or with a reset once the backend's
    /// response has started.
    func failExchange(status: HTTPResponseStatus, reason: String, backendFailed: Bool, retryAfter: Int? = nil) {
        responseReader = nil
        responseDeadline = .distantFuture
        releaseWritten()
        core.dropUpstream()
        core.releaseBackend(failed: backendFailed)
        dropPending()
        if responseStarted {
            phase = .responded
            connection.resetStream(streamID, errorCode: 0x2)  // INTERNAL_ERROR
            return
        }
        respondLocally(status, reason: reason, retryAfter: retryAfter)
    }

    private func respondLocally(
        _ status: HTTPResponseStatus, reason: String, retryAfter: Int? = nil, extraHeaders: [(String, String)] = []
    ) {
        let body = "\(status.code) \(status.reasonPhrase): \(reason)\n"
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "text/plain; charset=utf-8")
        headers.add(name: "content-length", value: String(body.utf8.count))
        if let retryAfter { headers.add(name: "retry-after", value: String(retryAfter)) }
        for (name, value) in extraHeaders { headers.add(name: name, value: value) }
        headers.add(name: RequestID.headerName, value: requestID.string)
        responseStatus = Int(status.code)
        responseStarted = true
        phase = .responded
        dropPending()
        discardedBytes = 0
        guard connection.submitResponse(streamID: streamID, status: Int(status.code), headers: headers, hasBody: !headRequest)
        else {
            connection.resetStream(streamID, errorCode: 0x2)
            return
        }
        if !headRequest {
            responseBodyBytes = body.utf8.count
            connection.sendBody(streamID: streamID, connection.allocator.buffer(string: body))
            connection.finishBody(streamID: streamID, trailers: nil)
        }
    }

    /// Request bytes that will never reach a backend still count against the client's windows:
    /// they are consumed here, or the connection's window would shrink for good.
    private func dropPending() {
        for buffer in pendingBody { consumed(buffer.readableBytes) }
        pendingBody.removeAll()
    }

    private func armResponseDeadline() {
        responseDeadline = .now() + TimeAmount(loop.timeouts.backendResponse)
    }

    /// Gives `count` upload bytes back to the client's flow-control window.
    private func consumed(_ count: Int) {
        unconsumedBytes -= count
        connection.consume(streamID: streamID, count: count)
    }

    /// Called by the connection's timer: an upload that made no progress for
    /// `timeouts.request_body` while nothing of it was held back by the gateway (its window was
    /// open) ends with 408, or a reset once the response has started.
    func checkRequestBody(now: NIODeadline) {
        guard !requestEnded, phase == .connecting || phase == .proxying else { return }
        if bodyProgressed || unconsumedBytes > 0 {
            bodyProgressed = false
            bodyQuietSince = nil
            return
        }
        let since = bodyQuietSince ?? now
        bodyQuietSince = since
        guard now - since >= TimeAmount(loop.timeouts.requestBody) else { return }
        loop.traffic.requestBodyTimeouts.add(1, ordering: .relaxed)
        failExchange(
            status: .requestTimeout, reason: "request body made no progress for \(loop.timeouts.requestBody)",
            backendFailed: false)
    }

    /// Called by the connection's timer.
    func checkResponseDeadline(now: NIODeadline) {
        guard case .proxying = phase, responseDeadline <= now else { return }
        failExchange(status: .gatewayTimeout, reason: "backend did not answer within \(loop.timeouts.backendResponse)", backendFailed: true)
    }

    /// The stream closed: completed with its status when it ended cleanly, as aborted when reset.
    func closed(errorCode: UInt32) {
        let clean = errorCode == 0 && phase == .responded
        phase = .closed
        responseDeadline = .distantFuture
        releaseWritten()
        core.dropUpstream()
        core.releaseBackend(failed: false)
        dropPending()
        core.token.take()?.complete(status: clean ? responseStatus : nil)
        if var record = logRecord.take() {
            record.bytesIn = requestBodyBytes
            record.bytesOut = responseBodyBytes
            // A stream reset before its response began: the client went away (nginx's 499).
            loop.accessLog?.finish(record, status: responseStarted ? (responseStatus ?? 499) : 499)
        }
    }
}

extension H2StreamExchange {
    /// Trailer field lines (`name: value\r\n`, validated by the chunk scanner) as fields.
    static func fields(of section: ByteBuffer) -> HTTPHeaders {
        var headers = HTTPHeaders()
        section.withUnsafeReadableBytes { raw in
            var lineStart = 0
            while lineStart < raw.count {
                var lineEnd = lineStart
                while lineEnd < raw.count, raw[lineEnd] != 0x0D, raw[lineEnd] != 0x0A { lineEnd += 1 }
                if let colon = raw[lineStart..<lineEnd].firstIndex(of: UInt8(ascii: ":")) {
                    var valueStart = colon + 1
                    var valueEnd = lineEnd
                    while valueStart < valueEnd, raw[valueStart] == 0x20 || raw[valueStart] == 0x09 { valueStart += 1 }
                    while valueEnd > valueStart, raw[valueEnd - 1] == 0x20 || raw[valueEnd - 1] == 0x09 { valueEnd -= 1 }
                    headers.add(
                        name: String(decoding: raw[lineStart..<colon], as: UTF8.self),
                        value: String(decoding: raw[valueStart..<valueEnd], as: UTF8.self))
                }
                lineStart = lineEnd
                while lineStart < raw.count, raw[lineStart] == 0x0D || raw[lineStart] == 0x0A { lineStart += 1 }
            }
        }
        return headers
    }
}

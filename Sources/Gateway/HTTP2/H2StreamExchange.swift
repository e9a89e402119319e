import NIOCore
import NIOHTTP1
import ProxyRules
import RequestControl

/// One HTTP/2 stream, which is one request: routed, admitted through RequestControl and proxied
/// to an HTTP/1.1 backend over the loop's connection pool, like `ProxyHandler` does for an
/// HTTP/1.1 request.
///
/// Upload backpressure: every DATA chunk is consumed (the client's window reopened) only when the
/// backend connection has written it. Download backpressure: while the stream's response queue
/// in the session holds more than `sendQueueLimit` bytes, or the client connection is not
/// writable, reads from the backend are held.
final class H2StreamExchange: UpstreamDelegate, BackendExchange {
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
    private var token: RequestToken?
    // The way to a backend (see `BackendExchange`).
    var route: Router.Route?
    var backend: (index: Int, backend: LoadBalancer.Backend)?
    var failedBackends: [Int] = []
    var upstream: UpstreamConnection?
    var upstreamHead: HTTPRequestHead?
    /// Parts waiting for the backend connection, with the byte count each frees in the client's window.
    private var pendingParts: [(HTTPClientRequestPart, Int)] = []
    private(set) var requestEnded = false
    private var requestBodyBytes = 0
    /// Upload bytes read and dropped after the response was complete.
    private var discardedBytes = 0
    private var requestTrailers: HTTPHeaders?
    /// The request's end was written to the current backend connection.
    private var endForwarded = false
    private(set) var requestBodyForwarded = false
    var retried = false
    var retriesUsed = 0
    var holdsRetryBudget = false
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
    private var requestID = ""
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
    }

    var deploymentName: String? { route?.deployment.name }

    // MARK: Request

    func start(_ head: H2Session.RequestHead, endStream: Bool, clientAddress: String, clientPort: Int, scheme: String) {
        requestEnded = endStream
        headRequest = head.method == "HEAD"
        requestID = RequestID.resolve(head.headers, generator: &loop.requestIDs)
        logRecord = loop.accessLog?.start(
            requestID: requestID, clientIP: clientAddress, clientPort: clientPort, method: head.method, path: head.path,
            httpVersion: "HTTP/2", headers: head.headers)
        if head.tooLarge {
            respondLocally(.requestHeaderFieldsTooLarge, reason: "request header fields too large")
            return
        }
        if head.method == "CONNECT" {
            respondLocally(.notImplemented, reason: "CONNECT is not supported")
            return
        }
        let router = loop.router
        let authority = head.authority ?? head.headers.first(name: "host")
        let host = router.usesHosts ? authority.flatMap(HostName.normalize) : nil
        guard let route = router.route(host: host, path: Substring(head.path), method: head.method) else {
            respondLocally(.notFound, reason: "no route for host \(authority ?? "(none)") and path \(head.path)")
            return
        }
        self.route = route
        logRecord?.routed(route)
        let declaredLength = head.headers.first(name: "content-length").flatMap(Int.init)
        if let maxBody = loop.limits.maxBodyBytes, let length = declaredLength, length > maxBody {
            respondLocally(.payloadTooLarge, reason: "request body of \(length) bytes exceeds \(maxBody)")
            return
        }
        switch route.controlPoint.beginRequest() {
        case .run(let admitted):
            token = consume admitted
        case .rejected(let reason):
            logRecord?.rejectReason = reason.rawValue
            let rejection = ProxyHandler.rejection(reason, route: route)
            respondLocally(
                .serviceUnavailable, reason: rejection.text, retryAfter: rejection.retryAfter,
                extraHeaders: [("x-gateway-reject", reason.rawValue)])
            return
        }

        var headers = HTTPHeaders()
        var cookies: [String] = []
        for (name, value) in head.headers {
            // RFC 9113 8.2.3: cookie crumbs are joined again for an HTTP/1.1 hop; `te` is
            // HTTP/2's own.
            if name == "cookie" {
                cookies.append(value)
            } else if name != "te" {
                headers.add(name: name, value: value)
            }
        }
        if !cookies.isEmpty { headers.add(name: "cookie", value: cookies.joined(separator: "; ")) }
        // The request was routed by :authority, so the backend sees that as its Host too
        // (RFC 9113 8.3.1: :authority takes precedence over a host field).
        if let given = head.authority { headers.replaceOrAdd(name: "host", value: given) }
        let method = HTTPMethod(rawValue: head.method)
        requestHasBody = !endStream
        // HTTP/1.1 carries request trailers only in a chunked body. A body of unknown length is
        // chunked anyway; one with a length goes chunked too when the client announced trailers
        // with a `trailer` field, or they would be dropped. (nghttp2 still holds the client to
        // its content-length.)
        let body: ForwardedRequest.Body =
            if endStream { .none }
            else if let declaredLength, !head.headers.contains(name: "trailer") { .length(declaredLength) }
            else { .chunked }
        var outbound = ForwardedRequest.head(
            method: method, uri: head.path, headers: headers, body: body, clientAddress: clientAddress, scheme: scheme)
        outbound.headers.replaceOrAdd(name: RequestID.headerName, value: requestID)
        upstreamHead = outbound
        connectUpstream()
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
            pendingParts.append((.body(.byteBuffer(buffer)), count))
        case .proxying:
            forward(.body(.byteBuffer(buffer)), freeing: count)
        case .responded, .closed:
            // The answer was the gateway's own (or is complete): the rest is dropped, up to a point.
            consumed(count)
            discardedBytes += count
            if discardedBytes > Self.discardLimit { connection.resetStream(streamID, errorCode: 0x8) }  // CANCEL
        }
    }

    func receiveEnd(trailers: HTTPHeaders?) {
        requestEnded = true
        requestTrailers = trailers
        switch phase {
        case .connecting:
            pendingParts.append((.end(trailers), 0))
        case .proxying:
            forward(.end(trailers), freeing: 0)
            endForwarded = true
            upstream?.channel.flush()
            armResponseDeadline()
        case .responded, .closed:
            break
        }
    }

    /// Writes a part to the backend; the client's window opens by `freeing` once it is written.
    private func forward(_ part: HTTPClientRequestPart, freeing count: Int) {
        guard let upstream else { return }
        if case .body = part { requestBodyForwarded = true }
        guard count > 0 else {
            upstream.channel.write(part, promise: nil)
            return
        }
        let promise = upstream.channel.eventLoop.makePromise(of: Void.self)
        upstream.channel.write(part, promise: promise)
        promise.futureResult.assumeIsolated().whenComplete { [self] _ in
            consumed(count)
        }
    }

    /// The end of a batch of DATA frames: push what was written to the backend.
    func flushUpstream() {
        if case .proxying = phase { upstream?.channel.flush() }
    }

    // MARK: Backend

    func attach(_ connection: UpstreamConnection) {
        guard let head = upstreamHead else { return }
        connection.exchanges += 1
        connection.handler.delegate = self
        upstream = connection
        phase = .proxying
        logRecord?.backend = connection.backend
        connection.channel.write(HTTPClientRequestPart.head(head), promise: nil)
        let parts = pendingParts
        pendingParts.removeAll()
        endForwarded = false
        for (part, count) in parts {
            if case .end = part { endForwarded = true }
            forward(part, freeing: count)
        }
        // A retry on a fresh connection: the end went to the connection that failed.
        if requestEnded, !endForwarded {
            forward(.end(requestTrailers), freeing: 0)
            endForwarded = true
        }
        connection.channel.flush()
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

    func upstreamWritabilityChanged(isWritable: Bool) {}

    func upstreamReceived(_ part: HTTPClientResponsePart) {
        guard case .proxying = phase else { return }
        armResponseDeadline()
        switch part {
        case .head(let head):
            // Interim responses (100, 103) are the backend's business with the gateway.
            if head.status.code < 200 { return }
            if !head.isKeepAlive { upstreamReusable = false }
            let status = Int(head.status.code)
            responseStatus = status
            responseStarted = true
            var headers = ProxyHandler.forwardedResponseHeaders(head.headers)
            headers.remove(name: "transfer-encoding")
            headers.replaceOrAdd(name: RequestID.headerName, value: requestID)
            let hasBody = !headRequest && status != 204 && status != 304
            if !connection.submitResponse(streamID: streamID, status: status, headers: headers, hasBody: hasBody) {
                failExchange(status: .badGateway, reason: "response head could not be sent", backendFailed: false)
            }
        case .body(let buffer):
            responseBodyBytes += buffer.readableBytes
            connection.sendBody(streamID: streamID, buffer)
        case .end(let trailers):
            finish(trailers: trailers)
        }
    }

    // MARK: BackendExchange

    var isConnecting: Bool { phase == .connecting }
    var isProxying: Bool { phase == .proxying }
    func enterConnecting() { phase = .connecting }

    // MARK: Finishing

    private func finish(trailers: HTTPHeaders?) {
        responseDeadline = .distantFuture
        finishWithBackend(reusable: upstreamReusable)
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
        responseDeadline = .distantFuture
        upstream?.close()
        upstream = nil
        releaseBackend(failed: backendFailed)
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
        headers.add(name: RequestID.headerName, value: requestID)
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
        for (_, count) in pendingParts { consumed(count) }
        pendingParts.removeAll()
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
        upstream?.close()
        upstream = nil
        releaseBackend(failed: false)
        dropPending()
        token.take()?.complete(status: clean ? responseStatus : nil)
        if var record = logRecord.take() {
            record.bytesIn = requestBodyBytes
            record.bytesOut = responseBodyBytes
            // A stream reset before its response began: the client went away (nginx's 499).
            loop.accessLog?.finish(record, status: responseStarted ? (responseStatus ?? 499) : 499)
        }
    }
}

import Logging
import NIOCore
import NIOHTTP1
import RequestControl

/// The client side of the proxy for one HTTP/1.1 connection: routes each request, admits it
/// through RequestControl, forwards it to a backend over a pooled connection and streams both
/// bodies with backpressure.
///
/// One request at a time: pipelined requests wait in `pipelined` until the connection is idle.
/// Every admitted request holds a `RequestToken` until its response end has been written or the
/// request failed, so the drain of a scope waits for exactly the requests that are still running.
///
/// Backpressure: while the backend connection cannot take more bytes, `read` calls from the
/// client are held; `UpstreamHandler` does the same for the other direction.
final class ProxyHandler: ChannelDuplexHandler, UpstreamDelegate, ClientConnection, BackendExchange,
    ConnectionTimeoutDelegate
{
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private enum Phase {
        /// Between requests.
        case idle
        /// Admitted; waiting for a backend connection. Client reads are held.
        case connecting
        /// Request forwarded; body and response streaming.
        case proxying
        /// A local response was sent before the request body ended; the rest is read and dropped.
        case discarding
        /// After a 101: raw bytes flow through `TunnelHandler`s; this handler only waits for the end.
        case tunnel
        /// The connection is closing; nothing more is done.
        case closed
    }

    let loop: LoopContext
    private let timeouts: ConnectionTimeoutHandler?
    private let scheme: String
    private var context: ChannelHandlerContext!
    private var clientAddress: String = ""
    private var phase = Phase.idle

    // The current request.
    private var token: RequestToken?
    /// The token of a response whose end is being written; completed when the write finishes.
    private var finishingToken: RequestToken?
    // The current request's way to a backend (see `BackendExchange`).
    var route: Router.Route?
    var backend: (index: Int, backend: LoadBalancer.Backend)?
    var failedBackends: [Int] = []
    var upstream: UpstreamConnection?
    var upstreamHead: HTTPRequestHead?
    private var pendingParts: [HTTPClientRequestPart] = []
    private(set) var requestEnded = false
    /// The head announced a body (a length above zero, or chunked framing).
    private var requestHasBody = false
    /// The last response's end is written but not yet flushed out.
    private var endWritePending = false
    private(set) var requestBodyForwarded = false
    /// The backend's response allows the connection to carry the next request.
    private var upstreamReusable = true
    private var requestBodyBytes = 0
    private var responseStatus: Int?
    private var responseHeadWritten = false
    private var keepAlive = true
    private var requestVersion = HTTPVersion.http1_1
    var retried = false
    private var readPending = false
    private var pipelined = CircularBuffer<HTTPServerRequestPart>()
    private var responseTimer: Scheduled<Void>?
    private var responseDeadline = NIODeadline.distantFuture
    private var lastDeployment: String?
    /// The protocol a client asked to upgrade to (`Upgrade:`), lower-cased.
    private var upgradeProtocol: String?
    private var clientTunnel: TunnelHandler?
    private var switchingHead: HTTPResponseHead?

    init(loop: LoopContext, timeouts: ConnectionTimeoutHandler?, scheme: String = "http") {
        self.loop = loop
        self.timeouts = timeouts
        self.scheme = scheme
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        timeouts?.delegate = self
        if let address = context.channel.remoteAddress?.ipAddress {
            clientAddress = address
        }
        loop.register(self)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        loop.unregister(self)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .tunnel = phase {
            // The upgraded connection lived out its life: that is the request's success.
            releaseBackend(failed: false)
            token.take()?.complete(status: 101)
        }
        phase = .closed
        abortExchange()
        finishingToken.take()?.complete(status: nil)
        loop.unregister(self)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        let answerable = !responseHeadWritten || phase == .idle
        abortExchange()
        phase = .closed
        guard let parserError = error as? HTTPParserError, answerable else {
            context.close(promise: nil)
            return
        }
        // The request could not be parsed: 431 when its head was too large, 400 otherwise; the
        // byte stream can no longer be trusted, so the connection closes after the answer.
        let (status, text): (HTTPResponseStatus, String) =
            switch parserError {
            case .headerOverflow: (.requestHeaderFieldsTooLarge, "request header fields too large\n")
            default: (.badRequest, "bad request: \(parserError)\n")
            }
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "text/plain; charset=utf-8")
        headers.add(name: "content-length", value: String(text.utf8.count))
        headers.add(name: "connection", value: "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: text)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        // A pipelined request (its head arrived before the previous response was done) waits,
        // and reads stop until it is taken up. Doing this here instead of with NIO's
        // HTTPServerPipelineHandler saves two epoll_ctl calls per request: that handler holds
        // every read while any response is in progress.
        if !pipelined.isEmpty {
            pipelined.append(part)
            return
        }
        if case .head = part, phase != .idle {
            pipelined.append(part)
            return
        }
        process(part)
    }

    private func process(_ part: HTTPServerRequestPart) {
        switch part {
        case .head(let head):
            receivedHead(head)
        case .body(let buffer):
            receivedBody(buffer)
        case .end(let trailers):
            receivedEnd(trailers)
        }
    }

    /// Takes up pipelined requests once the connection is idle again.
    private func processPipelined() {
        // A head waits for the connection to be idle; the body and end behind it belong to the
        // request that head started and go straight on.
        while let next = pipelined.first {
            if case .head = next, phase != .idle { break }
            process(pipelined.removeFirst())
        }
        resumeReadsIfPossible()
    }

    /// The connection is idle again: the keep-alive timer runs, and a pipelined request goes next
    /// (after the current call stack, never inside the write that finished the last response).
    private func becameIdle() {
        timeouts?.responseCompleted()
        if !pipelined.isEmpty {
            context.eventLoop.assumeIsolated().execute { [self] in processPipelined() }
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            upstream?.handler.resumeReadingIfNeeded()
        }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if shouldHoldReads {
            readPending = true
        } else {
            timeouts?.readRequested()
            context.read()
        }
    }

    private var shouldHoldReads: Bool {
        if !pipelined.isEmpty { return true }
        switch phase {
        case .connecting:
            return true
        case .proxying:
            if let upstream { return !upstream.channel.isWritable }
            return false
        case .idle, .discarding, .tunnel, .closed:
            return false
        }
    }

    private func resumeReadsIfPossible() {
        guard readPending, !shouldHoldReads else { return }
        readPending = false
        timeouts?.readRequested()
        context.read()
    }

    // MARK: Request

    private func receivedHead(_ head: HTTPRequestHead) {
        guard case .idle = phase else {
            // channelRead queues pipelined heads until the connection is idle; reaching this
            // would be a bug, and the connection's state could not be trusted.
            closeNow()
            return
        }
        loop.traffic.http1Requests.add(1, ordering: .relaxed)
        resetRequestState()
        keepAlive = head.isKeepAlive
        requestVersion = head.version.major == 1 && head.version.minor == 0 ? .http1_0 : .http1_1
        let body: ForwardedRequest.Body
        switch Self.bodyFraming(head.headers) {
        case .success(let framing):
            body = framing
        case .failure(let refusal):
            timeouts?.requestHeadReceived(bodyExpected: true)
            requestHasBody = true  // unknown: the connection is not reused
            writeLocalResponse(status: refusal.status, reason: refusal.reason)
            return
        }
        requestHasBody = body != .none
        timeouts?.requestHeadReceived(bodyExpected: requestHasBody)
        let declaredLength: Int? = if case .length(let count) = body { count } else { nil }

        let router = loop.router
        let host = router.usesHosts ? head.headers.first(name: "host").flatMap(HostName.normalize) : nil
        let path = head.uri.utf8.first == UInt8(ascii: "/") ? Substring(head.uri) : Self.pathOfAbsoluteURI(head.uri)
        guard let route = router.route(host: host, path: path, method: head.method.rawValue) else {
            writeLocalResponse(
                status: .notFound,
                reason: "no route for host \(head.headers.first(name: "host") ?? "(none)") and path \(path)"
            )
            return
        }
        self.route = route
        lastDeployment = route.deployment.name

        if let maxBody = loop.limits.maxBodyBytes, let length = declaredLength, length > maxBody {
            writeLocalResponse(status: .payloadTooLarge, reason: "request body of \(length) bytes exceeds \(maxBody)")
            return
        }

        switch route.controlPoint.beginRequest() {
        case .run(let admitted):
            token = consume admitted
        case .rejected(let reason):
            respondRejected(reason: reason, route: route)
            return
        }

        var outbound = ForwardedRequest.head(
            method: head.method, uri: head.uri, headers: head.headers, body: body,
            clientAddress: clientAddress, scheme: scheme)
        if let upgrade = head.headers.first(name: "upgrade"),
            head.headers[canonicalForm: "connection"].contains(where: { $0.lowercased() == "upgrade" })
        {
            // Upgrade is hop-by-hop, but a tunnel needs the backend to see it.
            upgradeProtocol = upgrade.lowercased()
            outbound.headers.add(name: "connection", value: "upgrade")
            outbound.headers.add(name: "upgrade", value: upgrade)
        }
        upstreamHead = outbound

        // The gateway answers 100-continue itself once the request is admitted, so a refused
        // client never sends its body (and the backend never needs to speak 100-continue).
        if head.headers.first(name: "expect")?.lowercased() == "100-continue" {
            let interim = HTTPResponseHead(version: head.version, status: .continue)
            context.writeAndFlush(wrapOutboundOut(.head(interim)), promise: nil)
        }
        connectUpstream()
    }

    private func receivedBody(_ buffer: ByteBuffer) {
        requestBodyBytes += buffer.readableBytes
        if phase == .connecting || phase == .proxying, let maxBody = loop.limits.maxBodyBytes, requestBodyBytes > maxBody {
            failExchange(status: .payloadTooLarge, reason: "request body exceeds \(maxBody) bytes", backendFailed: false)
            return
        }
        switch phase {
        case .connecting:
            pendingParts.append(.body(.byteBuffer(buffer)))
        case .proxying:
            requestBodyForwarded = true
            upstream?.channel.write(HTTPClientRequestPart.body(.byteBuffer(buffer)), promise: nil)
        case .tunnel:
            break
        case .discarding:
            // The answer is out; a client that keeps uploading past this is cut off.
            if requestBodyBytes > Self.discardLimit { closeNow() }
        case .idle, .closed:
            break
        }
    }

    /// How much of a refused request's body is read and dropped before the connection is closed.
    static let discardLimit = 1 << 20

    private func receivedEnd(_ trailers: HTTPHeaders?) {
        requestEnded = true
        timeouts?.requestBodyEnded()
        switch phase {
        case .connecting:
            pendingParts.append(.end(trailers))
        case .proxying:
            upstream?.channel.writeAndFlush(HTTPClientRequestPart.end(trailers), promise: nil)
            armResponseTimer()
        case .discarding:
            // A local response was already written; the connection waits for the next request,
            // or closes once that response is out.
            if keepAlive {
                phase = .idle
                becameIdle()
            } else if endWritePending {
                phase = .closed
            } else {
                closeNow()
            }
        case .idle, .tunnel, .closed:
            break
        }
    }

    /// The request channel's `channelReadComplete`: push what was written to the backend.
    func channelReadComplete(context: ChannelHandlerContext) {
        if case .proxying = phase { upstream?.channel.flush() }
        context.fireChannelReadComplete()
    }

    // MARK: Upstream connection

    func attach(_ connection: UpstreamConnection) {
        guard let head = upstreamHead else { return }
        connection.exchanges += 1
        connection.handler.delegate = self
        upstream = connection
        phase = .proxying
        connection.channel.write(HTTPClientRequestPart.head(head), promise: nil)
        let parts = pendingParts
        pendingParts.removeAll()
        var endWritten = false
        for part in parts {
            if case .body = part { requestBodyForwarded = true }
            if case .end = part { endWritten = true }
            connection.channel.write(part, promise: nil)
        }
        // A retry on a fresh connection: the request's end went to the connection that failed
        // (a chunked request needs it, or the backend waits for its last chunk).
        if requestEnded, !endWritten {
            connection.channel.write(HTTPClientRequestPart.end(nil), promise: nil)
        }
        connection.channel.flush()
        if requestEnded { armResponseTimer() }
        resumeReadsIfPossible()
    }

    // MARK: UpstreamDelegate

    var clientIsWritable: Bool { context.channel.isWritable }

    func upstreamReadComplete() {
        if case .proxying = phase { context.flush() }
    }

    func upstreamWritabilityChanged(isWritable: Bool) {
        if isWritable { resumeReadsIfPossible() }
    }

    func upstreamReceived(_ part: HTTPClientResponsePart) {
        guard case .proxying = phase else { return }
        armResponseTimer()
        switch part {
        case .head(let head):
            if head.status.code < 200 {
                // 100 Continue was already answered by the gateway; other 1xx pass through.
                if head.status != .continue, head.status != .switchingProtocols {
                    let interim = HTTPResponseHead(version: .http1_1, status: head.status, headers: head.headers)
                    context.writeAndFlush(wrapOutboundOut(.head(interim)), promise: nil)
                }
                if head.status == .switchingProtocols {
                    if upgradeProtocol != nil {
                        // The decoder sends the 101's end next; the pipelines change after it.
                        switchingHead = head
                    } else {
                        failExchange(status: .badGateway, reason: "backend switched protocols without being asked", backendFailed: true)
                    }
                }
                return
            }
            if !head.isKeepAlive { upstreamReusable = false }
            responseStatus = Int(head.status.code)
            // An HTTP/1.0 client gets a 1.0 response: no chunked framing it cannot read.
            var response = HTTPResponseHead(version: requestVersion, status: head.status)
            response.headers = Self.forwardedResponseHeaders(head.headers)
            if !keepAlive || route?.controlPoint.isDraining == true {
                keepAlive = false
                response.headers.replaceOrAdd(name: "connection", value: "close")
            }
            responseHeadWritten = true
            context.write(wrapOutboundOut(.head(response)), promise: nil)
        case .body(let buffer):
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        case .end(let trailers):
            if let head = switchingHead {
                switchingHead = nil
                // Not inside the decoder's own read: its removal forwards what it buffered.
                context.eventLoop.assumeIsolated().execute { [self] in startTunnel(head) }
            } else {
                finishExchange(trailers: trailers)
            }
        }
    }


    // MARK: BackendExchange

    var responseStarted: Bool { responseHeadWritten }
    var isConnecting: Bool { phase == .connecting }
    var isProxying: Bool { phase == .proxying }
    func enterConnecting() { phase = .connecting }

    // MARK: Upgrades

    /// The backend accepted the upgrade: answer 101 to the client and turn both connections into
    /// a byte tunnel. The request stays in flight (and counted) until the tunnel closes, so a
    /// drain waits for it up to its timeout and then closes it (`closeTunnel`).
    private func startTunnel(_ head: HTTPResponseHead) {
        guard case .proxying = phase, let connection = upstream else { return }
        upstream = nil
        responseDeadline = .distantFuture
        var response = HTTPResponseHead(version: .http1_1, status: .switchingProtocols)
        response.headers = Self.forwardedResponseHeaders(head.headers)
        response.headers.add(name: "connection", value: "upgrade")
        response.headers.add(name: "upgrade", value: head.headers.first(name: "upgrade") ?? upgradeProtocol ?? "")
        responseStatus = 101
        responseHeadWritten = true
        phase = .tunnel
        context.writeAndFlush(wrapOutboundOut(.head(response)), promise: nil)

        let clientSide = TunnelHandler()
        let backendSide = TunnelHandler()
        clientSide.peer = backendSide
        backendSide.peer = clientSide
        clientTunnel = clientSide
        if let timeouts {
            timeouts.tunnelStarted()
            backendSide.onRead = { timeouts.tunnelActivity() }
        }
        connection.handler.delegate = nil
        do {
            // Backend: the tunnel replaces the HTTP codec. The decoder goes after the tunnel
            // handler is in place, so bytes the backend sent right after its 101 reach it.
            let upstreamPipeline = connection.channel.pipeline.syncOperations
            try upstreamPipeline.addHandler(backendSide)
            _ = upstreamPipeline.removeHandler(connection.handler)
            _ = upstreamPipeline.removeHandler(try upstreamPipeline.handler(type: ByteToMessageHandler<HTTPResponseDecoder>.self))
            _ = upstreamPipeline.removeHandler(try upstreamPipeline.handler(type: HTTPRequestEncoder.self))

            // Client: raw bytes stop at the tunnel handler in front of this one; this handler
            // stays to see the connection end.
            let clientPipeline = context.pipeline.syncOperations
            try clientPipeline.addHandler(clientSide, position: .before(self))
            _ = clientPipeline.removeHandler(try clientPipeline.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self))
            _ = clientPipeline.removeHandler(try clientPipeline.handler(type: HTTPResponseEncoder.self))
            if let validator = try? clientPipeline.handler(type: NIOHTTPResponseHeadersValidator.self) {
                _ = clientPipeline.removeHandler(validator)
            }
        } catch {
            loop.logger.error("cannot set up upgrade tunnel", metadata: ["error": "\(error)"])
            connection.channel.close(promise: nil)
            closeNow()
            return
        }
        connection.channel.read()
        context.read()
    }

    // MARK: ConnectionTimeoutDelegate

    func requestBodyTimedOut() {
        loop.traffic.requestBodyTimeouts.add(1, ordering: .relaxed)
        let reason = "request body made no progress for \(loop.timeouts.requestBody)"
        switch phase {
        case .connecting, .proxying:
            // The rest of the body is abandoned: the answer closes the connection.
            keepAlive = false
            requestEnded = true
            failExchange(status: .requestTimeout, reason: reason, backendFailed: false)
        case .discarding, .idle, .tunnel, .closed:
            closeNow()
        }
    }

    func tunnelIdleTimedOut() {
        guard case .tunnel = phase else { return }
        loop.traffic.tunnelIdleTimeouts.add(1, ordering: .relaxed)
        clientTunnel?.writeAndClose(nil)
    }

    /// Ends a tunnel whose scope finished draining; a WebSocket client gets a close frame with
    /// 1001 (going away) first.
    func closeTunnel(deployment: String?) {
        guard case .tunnel = phase, let clientTunnel else { return }
        if let deployment, lastDeployment != deployment { return }
        let goingAway: [UInt8]? = upgradeProtocol == "websocket" ? [0x88, 0x02, 0x03, 0xE9] : nil
        clientTunnel.writeAndClose(goingAway)
    }

    // MARK: Finishing

    private func finishExchange(trailers: HTTPHeaders?) {
        // The timer stays scheduled for the next exchange on this connection; it finds no
        // exchange in progress if it fires first.
        responseDeadline = .distantFuture
        finishWithBackend(reusable: upstreamReusable)
        writeEnd(trailers: trailers, status: responseStatus ?? 502)
    }

    /// Ends the current exchange with a local error response when nothing was sent to the client
    /// yet, or by closing the connection when a response is already under way.
    func failExchange(status: HTTPResponseStatus, reason: String, backendFailed: Bool, retryAfter: Int? = nil) {
        responseTimer?.cancel()
        responseTimer = nil
        upstream?.close()
        upstream = nil
        releaseBackend(failed: backendFailed)
        if responseHeadWritten {
            token.take()?.complete(status: Int(status.code))
            closeNow()
            return
        }
        if bodyStillComing { keepAlive = false }
        writeLocalResponse(status: status, reason: reason, retryAfter: retryAfter, extraHeaders: [])
    }

    /// Writes the response end; the request counts as in flight until the write has finished.
    private func writeEnd(trailers: HTTPHeaders?, status: Int) {
        finishingToken.take()?.complete(status: status)
        finishingToken = token.take()
        // A body still on its way cannot share the connection with the next request; a request
        // without one only has its end to come, and keeps the connection.
        if bodyStillComing { keepAlive = false }
        phase = requestEnded ? (keepAlive ? .idle : .closed) : .discarding
        endWritePending = true
        context.writeAndFlush(wrapOutboundOut(.end(trailers))).assumeIsolated().whenComplete { [self] result in
            endWritePending = false
            if case .success = result {
                finishingToken.take()?.complete(status: status)
            } else {
                finishingToken.take()?.complete(status: nil)
            }
            if case .closed = phase {
                context.close(promise: nil)
            } else if case .idle = phase {
                becameIdle()
            }
        }
    }

    private func respondRejected(reason: RejectionReason, route: Router.Route) {
        let rejection = Self.rejection(reason, route: route)
        writeLocalResponse(
            status: .serviceUnavailable,
            reason: rejection.text,
            retryAfter: rejection.retryAfter,
            extraHeaders: [("x-gateway-reject", reason.rawValue)]
        )
    }

    /// What a refused client is told, and when it should try again (seconds); the same for
    /// HTTP/1.1 requests and HTTP/2 streams.
    static func rejection(_ reason: RejectionReason, route: Router.Route) -> (text: String, retryAfter: Int) {
        switch reason {
        case .suspended:
            ("draining: \(route.deployment.name)/\(route.controlPoint.entryPoint) is not accepting requests", 5)
        case .globalLimit:
            ("overloaded: the gateway's request limit is reached", 1)
        case .deploymentLimit:
            ("overloaded: deployment \(route.deployment.name) is at its request limit", 1)
        case .entryPointLimit:
            ("overloaded: entry point \(route.deployment.name)/\(route.controlPoint.entryPoint) is at its request limit", 1)
        }
    }

    /// A response the gateway produces itself: routing misses, refusals, backend failures.
    private func writeLocalResponse(
        status: HTTPResponseStatus,
        reason: String,
        retryAfter: Int? = nil,
        extraHeaders: [(String, String)] = []
    ) {
        let body = "\(status.code) \(status.reasonPhrase): \(reason)\n"
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "text/plain; charset=utf-8")
        headers.add(name: "content-length", value: String(body.utf8.count))
        if let retryAfter { headers.add(name: "retry-after", value: String(retryAfter)) }
        for (name, value) in extraHeaders { headers.add(name: name, value: value) }
        // A request whose body has not been read yet cannot share the connection with the next.
        if bodyStillComing || route?.controlPoint.isDraining == true { keepAlive = false }
        if !keepAlive { headers.add(name: "connection", value: "close") }
        responseStatus = Int(status.code)
        responseHeadWritten = true
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: requestVersion, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        writeEnd(trailers: nil, status: Int(status.code))
    }

    /// Moves the backend-response deadline; one timer per exchange re-arms itself when it fires
    /// early, so a streaming response costs a clock read per read, not a timer.
    private func armResponseTimer() {
        responseDeadline = .now() + TimeAmount(loop.timeouts.backendResponse)
        if responseTimer == nil { scheduleResponseTimer() }
    }

    private func scheduleResponseTimer() {
        // Strong capture: cancelled when the connection ends (see ConnectionTimeoutHandler).
        responseTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: responseDeadline) { [self] in
            self.responseTimer = nil
            guard case .proxying = self.phase else { return }
            if self.responseDeadline > .now() {
                self.scheduleResponseTimer()
                return
            }
            self.failExchange(
                status: .gatewayTimeout,
                reason: "backend did not answer within \(self.loop.timeouts.backendResponse)",
                backendFailed: true
            )
        }
    }

    /// Releases everything the current exchange holds after the client went away.
    private func abortExchange() {
        responseTimer?.cancel()
        responseTimer = nil
        upstream?.close()
        upstream = nil
        releaseBackend(failed: false)
        token.take()?.complete(status: nil)
        pendingParts.removeAll()
    }

    private func resetRequestState() {
        route = nil
        backend = nil
        failedBackends.removeAll(keepingCapacity: true)
        upstreamHead = nil
        pendingParts.removeAll(keepingCapacity: true)
        requestEnded = false
        requestHasBody = false
        requestBodyForwarded = false
        requestBodyBytes = 0
        responseStatus = nil
        responseHeadWritten = false
        upstreamReusable = true
        retried = false
        upgradeProtocol = nil
        switchingHead = nil
    }

    // MARK: Connection management (called by LoopContext on drains and shutdown)

    func closeIfIdle(deployment: String?) {
        guard case .idle = phase else { return }
        if let deployment, lastDeployment != deployment { return }
        closeNow()
    }

    func closeNow() {
        guard let context else { return }
        phase = .closed
        context.close(promise: nil)
    }

    // MARK: Headers

    static func forwardedResponseHeaders(_ headers: HTTPHeaders) -> HTTPHeaders {
        var out = HTTPHeaders()
        let named = ForwardedRequest.connectionTokens(headers)
        for (name, value) in headers {
            if HeaderName.isHopByHop(name) { continue }
            if !named.isEmpty, named.contains(where: { HeaderName.equals($0, name) }) { continue }
            out.add(name: name, value: value)
        }
        return out
    }

    struct FramingRefusal: Error {
        var status: HTTPResponseStatus
        var reason: String
    }

    /// How the request's body is framed, as NIO's parser (llhttp) read it: it has already refused
    /// a `Content-Length` beside `Transfer-Encoding`, conflicting lengths and a coding list that
    /// does not end in chunked. What is left to refuse is a coding the gateway cannot pass on
    /// as it is (RFC 9112 6.1: 501), since the backend would get the body de-chunked but still
    /// coded.
    static func bodyFraming(_ headers: HTTPHeaders) -> Result<ForwardedRequest.Body, FramingRefusal> {
        if headers.contains(name: "transfer-encoding") {
            let codings = headers[canonicalForm: "transfer-encoding"]
            guard codings.count == 1, HeaderName.equals(codings[0], "chunked") else {
                return .failure(FramingRefusal(
                    status: .notImplemented,
                    reason: "transfer coding \(codings.joined(separator: ", ")) is not supported; only chunked is"))
            }
            return .success(.chunked)
        }
        guard let text = headers.first(name: "content-length") else { return .success(.none) }
        guard let length = Int(text), length >= 0 else {
            return .failure(FramingRefusal(status: .badRequest, reason: "invalid content-length \(text)"))
        }
        return .success(length == 0 ? .none : .length(length))
    }

    private var bodyStillComing: Bool { requestHasBody && !requestEnded }

    /// The path of an absolute-form request target (`http://host/path`), for routing.
    private static func pathOfAbsoluteURI(_ uri: String) -> Substring {
        guard let schemeEnd = uri.range(of: "://") else { return Substring(uri) }
        let rest = uri[schemeEnd.upperBound...]
        guard let slash = rest.firstIndex(of: "/") else { return "/" }
        return rest[slash...]
    }
}

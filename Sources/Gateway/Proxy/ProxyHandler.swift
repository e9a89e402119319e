import Logging
import NIOCore
import NIOHTTP1
import ProxyRules
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
    private var clientPort = 0
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
    private(set) var requestHasBody = false
    /// The last response's end is written but not yet flushed out.
    private var endWritePending = false
    private(set) var requestBodyForwarded = false
    /// The backend's response allows the connection to carry the next request.
    private var upstreamReusable = true
    private var requestBodyBytes = 0
    private var responseStatus: Int?
    private var responseHeadWritten = false
    private var keepAlive = true
    /// Requests this connection has carried (a handover closes only connections that had one).
    private var requestsServed = 0
    private var requestVersion = HTTPVersion.http1_1
    var retried = false
    var retriesUsed = 0
    var holdsRetryBudget = false
    private var readPending = false
    private var pipelined = CircularBuffer<HTTPServerRequestPart>()
    private var responseTimer: Scheduled<Void>?
    private var responseDeadline = NIODeadline.distantFuture
    private var lastDeployment: String?
    /// The protocol a client asked to upgrade to (`Upgrade:`), lower-cased.
    private var upgradeProtocol: String?
    private var clientTunnel: TunnelHandler?
    private var switchingHead: HTTPResponseHead?
    /// The current request asked for an upgrade (or was a CONNECT): llhttp parses nothing after
    /// it, so unless it becomes a tunnel the decoder is replaced before the next request.
    private var decoderStopsAfterRequest = false
    /// The current request's id (see `RequestID`), on its way to the backend and back.
    private var requestID = ""
    /// The current request's access-log record, while it runs; nil without an access log.
    private var logRecord: AccessLogRecord?
    /// Body bytes of the current response written to the client.
    private var responseBodyBytes = 0
    private var backendTunnel: TunnelHandler?
    /// A request behind the current one could not be parsed: answered with 400 once the ones
    /// before it are (their responses come first, in order).
    private var deferredParseError: HTTPParserError?

    init(loop: LoopContext, timeouts: ConnectionTimeoutHandler?, scheme: String = "http") {
        self.loop = loop
        self.timeouts = timeouts
        self.scheme = scheme
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        timeouts?.delegate = self
        if let remote = context.channel.remoteAddress {
            clientAddress = remote.ipAddress ?? ""
            clientPort = remote.port ?? 0
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
            logRecord?.bytesIn = clientTunnel?.bytesRead ?? 0
            logRecord?.bytesOut = backendTunnel?.bytesRead ?? 0
            finishLog(status: 101)
        }
        phase = .closed
        abortExchange()
        finishingToken.take()?.complete(status: nil)
        loop.unregister(self)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let parserError = error as? HTTPParserError, phase != .closed, deferredParseError == nil,
            (phase != .idle && requestEnded) || !pipelined.isEmpty
        {
            // The bytes that broke belong to a request behind complete ones: those are answered
            // first. The decoder has given up on the connection, so nothing more will come.
            Self.dropIncompleteRequest(from: &pipelined)
            deferredParseError = parserError
            if pipelined.isEmpty, phase == .idle { answerDeferredParseError() }
            return
        }
        answerParseError(error)
    }

    /// Removes the parts of a request whose end never came from the back of the queue.
    private static func dropIncompleteRequest(from queue: inout CircularBuffer<HTTPServerRequestPart>) {
        guard let last = queue.last else { return }
        if case .end = last { return }
        while let part = queue.popLast() {
            if case .head = part { return }
        }
    }

    private func answerDeferredParseError() {
        guard let error = deferredParseError else { return }
        deferredParseError = nil
        resetRequestState()
        answerParseError(error)
    }

    private func answerParseError(_ error: Error) {
        guard let context else { return }
        let answerable = !responseHeadWritten || phase == .idle
        // A request whose head was read and whose body is broken: its line is this answer's
        // (400 under the id it came with), not a 499 and then a second line under a new id.
        let current = answerable && error is HTTPParserError ? logRecord.take() : nil
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
        // Without a request head no id came: the answer still carries one, to quote, and the
        // access log has the line (method and path unknown: "-").
        let id = current?.requestID ?? loop.requestIDs.next()
        headers.add(name: RequestID.headerName, value: id)
        if var record = current
            ?? loop.accessLog?.start(
                requestID: id, clientIP: clientAddress, clientPort: clientPort, method: "-", path: "-", httpVersion: "HTTP/1.1",
                headers: HTTPHeaders())
        {
            record.bytesIn = max(record.bytesIn, requestBodyBytes)
            record.bytesOut = text.utf8.count
            loop.accessLog?.finish(record, status: Int(status.code))
        }
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
        if pipelined.isEmpty, phase == .idle, deferredParseError != nil {
            answerDeferredParseError()
            return
        }
        resumeReadsIfPossible()
    }

    /// The connection is idle again: the keep-alive timer runs, and a pipelined request goes next
    /// (after the current call stack, never inside the write that finished the last response).
    private func becameIdle() {
        timeouts?.responseCompleted()
        if decoderStopsAfterRequest {
            decoderStopsAfterRequest = false
            context.eventLoop.assumeIsolated().execute { [self] in restartDecoder() }
        } else if !pipelined.isEmpty || deferredParseError != nil {
            context.eventLoop.assumeIsolated().execute { [self] in processPipelined() }
        } else {
            // Reads held while a connect was pending stay held unless released here: an exchange
            // answered locally (a 502 after failed connects) never reached `attach`, and the
            // connection went deaf to the client's next request.
            resumeReadsIfPossible()
        }
    }

    /// After an upgrade request that did not become a tunnel (the backend refused, the gateway
    /// does not tunnel that protocol, a local answer), the connection goes on as HTTP/1.1; llhttp
    /// has stopped at that request, so a new codec takes over. The old decoder hands the bytes it
    /// held on to the new one as it leaves.
    private func restartDecoder() {
        guard case .idle = phase else { return }
        let sync = context.pipeline.syncOperations
        do {
            let oldDecoder = try sync.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            let oldEncoder = try sync.handler(type: HTTPResponseEncoder.self)
            try ClientPipeline.addHTTP1Codec(to: sync, position: .before(self), limits: loop.limits)
            sync.removeHandler(oldEncoder, promise: nil)
            sync.removeHandler(oldDecoder, promise: nil)
        } catch {
            loop.logger.error("cannot restart the HTTP/1.1 decoder", metadata: ["error": "\(error)"])
            closeNow()
            return
        }
        processPipelined()
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
        requestsServed += 1
        resetRequestState()
        keepAlive = head.isKeepAlive
        requestVersion = head.version.major == 1 && head.version.minor == 0 ? .http1_0 : .http1_1
        requestID = RequestID.resolve(head.headers, generator: &loop.requestIDs)
        logRecord = loop.accessLog?.start(
            requestID: requestID, clientIP: clientAddress, clientPort: clientPort, method: head.method.rawValue, path: head.uri,
            httpVersion: requestVersion == .http1_0 ? "HTTP/1.0" : "HTTP/1.1", headers: head.headers)
        let body: ForwardedRequest.Body
        switch ForwardedRequest.body(of: head.headers) {
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
        // llhttp stops parsing after a request that asks for an upgrade (or a CONNECT), whatever
        // the answer; the decoder is replaced when the connection goes on as HTTP.
        let asksUpgrade = head.headers.contains(name: "upgrade") && Self.connectionHasToken(head.headers, "upgrade")
        decoderStopsAfterRequest = asksUpgrade || head.method == .CONNECT

        if head.method == .CONNECT {
            // A tunnel to anywhere is not this gateway's business: a framed 405, and the
            // connection closes.
            keepAlive = false
            writeConnectRefusal()
            return
        }
        let target: RequestTarget
        switch RequestTarget.parse(head) {
        case .success(let parsed):
            target = parsed
        case .failure(let refusal):
            keepAlive = false
            writeLocalResponse(status: .badRequest, reason: refusal.reason)
            return
        }

        let router = loop.router
        let path = Substring(target.uri)
        guard let route = router.route(host: router.usesHosts ? target.routingHost : nil, path: path, method: head.method.rawValue)
        else {
            writeLocalResponse(status: .notFound, reason: "no route for host \(target.host ?? "(none)") and path \(path)")
            return
        }
        self.route = route
        lastDeployment = route.deployment.name
        logRecord?.routed(route)

        if let maxBody = loop.limits.maxBodyBytes, let length = declaredLength, length > maxBody {
            writeLocalResponse(status: .payloadTooLarge, reason: "request body of \(length) bytes exceeds \(maxBody)")
            return
        }

        switch route.controlPoint.beginRequest() {
        case .run(let admitted):
            token = consume admitted
        case .rejected(let reason):
            logRecord?.rejectReason = reason.rawValue
            respondRejected(reason: reason, route: route)
            return
        }

        var inbound = head.headers
        if let host = target.host, target.uri != head.uri { inbound.replaceOrAdd(name: "host", value: host) }
        var outbound = ForwardedRequest.head(
            method: head.method, uri: target.uri, headers: inbound, body: body,
            clientAddress: clientAddress, scheme: scheme)
        outbound.headers.replaceOrAdd(name: RequestID.headerName, value: requestID)
        if asksUpgrade, let upgrade = head.headers.first(name: "upgrade"),
            loop.upgradeProtocols.contains(where: { HeaderName.equals($0, upgrade) })
        {
            // Upgrade is hop-by-hop, but a tunnel needs the backend to see it. Upgrades the
            // gateway does not tunnel (h2c above all: RFC 9113 deprecates it) are not passed on;
            // the request is answered over HTTP/1.1.
            upgradeProtocol = upgrade.lowercased()
            outbound.headers.add(name: "connection", value: "upgrade")
            outbound.headers.add(name: "upgrade", value: upgrade)
        }
        upstreamHead = outbound

        // The gateway answers 100-continue itself once the request is admitted, so a refused
        // client never sends its body (and the backend never needs to speak 100-continue). An
        // HTTP/1.0 client does not know 100 (RFC 9110 10.1.1): it just sends its body.
        if requestVersion == .http1_1, head.headers.first(name: "expect")?.lowercased() == "100-continue" {
            let interim = HTTPResponseHead(version: head.version, status: .continue)
            context.writeAndFlush(wrapOutboundOut(.head(interim)), promise: nil)
        }
        connectUpstream()
    }

    private static func connectionHasToken(_ headers: HTTPHeaders, _ token: StaticString) -> Bool {
        headers.contains(name: "connection") && headers[canonicalForm: "connection"].contains { HeaderName.equals(String($0), token) }
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
        logRecord?.backend = connection.backend
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
            response.headers.replaceOrAdd(name: RequestID.headerName, value: requestID)
            if !keepAlive || route?.controlPoint.isDraining == true || loop.handingOver {
                keepAlive = false
                response.headers.replaceOrAdd(name: "connection", value: "close")
            }
            responseHeadWritten = true
            context.write(wrapOutboundOut(.head(response)), promise: nil)
        case .body(let buffer):
            responseBodyBytes += buffer.readableBytes
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
        response.headers.replaceOrAdd(name: RequestID.headerName, value: requestID)
        responseStatus = 101
        responseHeadWritten = true
        phase = .tunnel
        context.writeAndFlush(wrapOutboundOut(.head(response)), promise: nil)

        let clientSide = TunnelHandler()
        let backendSide = TunnelHandler()
        clientSide.peer = backendSide
        backendSide.peer = clientSide
        clientTunnel = clientSide
        backendTunnel = backendSide
        if let timeouts {
            timeouts.tunnelStarted()
            backendSide.onRead = { timeouts.tunnelActivity() }
        }
        connection.handler.delegate = nil
        do {
            // Both tunnel handlers go in before any codec leaves: a decoder hands on the bytes it
            // holds as it is removed (the backend's first frame, sent with its 101; the client's,
            // sent with its request), and the other side's handler must be there to take them.
            let upstreamPipeline = connection.channel.pipeline.syncOperations
            let clientPipeline = context.pipeline.syncOperations
            try upstreamPipeline.addHandler(backendSide)
            try clientPipeline.addHandler(clientSide, position: .before(self))

            // The encoders go first, so the raw bytes each side writes to the other pass no
            // HTTP encoder; then the backend's upstream handler (the decoder's bytes must reach
            // the tunnel handler behind it); then the decoders, which hand on what they hold.
            _ = clientPipeline.removeHandler(try clientPipeline.handler(type: HTTPResponseEncoder.self))
            if let validator = try? clientPipeline.handler(type: NIOHTTPResponseHeadersValidator.self) {
                _ = clientPipeline.removeHandler(validator)
            }
            _ = upstreamPipeline.removeHandler(try upstreamPipeline.handler(type: HTTPRequestEncoder.self))
            _ = upstreamPipeline.removeHandler(connection.handler)
            // A decoder leaves on a later turn of the loop, handing on its bytes as it goes (not
            // in a read, so no read-complete flushes them): the other side is flushed then.
            upstreamPipeline.removeHandler(try upstreamPipeline.handler(type: ByteToMessageHandler<HTTPResponseDecoder>.self))
                .assumeIsolated().whenComplete { _ in clientSide.context?.flush() }
            // Client: raw bytes stop at the tunnel handler in front of this one; this handler
            // stays to see the connection end.
            clientPipeline.removeHandler(try clientPipeline.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self))
                .assumeIsolated().whenComplete { _ in backendSide.context?.flush() }
        } catch {
            loop.logger.error("cannot set up upgrade tunnel", metadata: ["error": "\(error)"])
            connection.channel.close(promise: nil)
            closeNow()
            return
        }
        connection.channel.read()
        context.read()
    }

    /// The answer to CONNECT: a framed 405 with `Allow`, and the connection closes. Written
    /// below NIO's encoder, which strips the framing of every response to CONNECT (a 2xx opens a
    /// tunnel and must have none), so the client could only find the end by the close.
    private func writeConnectRefusal() {
        let body = "405 Method Not Allowed: CONNECT is not supported\n"
        let version = requestVersion == .http1_0 ? "HTTP/1.0" : "HTTP/1.1"
        let response =
            "\(version) 405 Method Not Allowed\r\nallow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\n"
            + "content-type: text/plain; charset=utf-8\r\ncontent-length: \(body.utf8.count)\r\nconnection: close\r\n"
            + "\(RequestID.headerName): \(requestID)\r\n\r\n" + body
        phase = .closed
        responseBodyBytes = body.utf8.count
        finishLog(status: 405)
        if let timeouts {
            timeouts.writeRawAndClose(response)
        } else {
            context.close(promise: nil)
        }
    }

    // MARK: ConnectionTimeoutDelegate

    func requestBodyTimedOut() {
        loop.traffic.requestBodyTimeouts.add(1, ordering: .relaxed)
        let reason = "request body made no progress for \(loop.timeouts.requestBody)"
        switch phase {
        case .connecting, .proxying:
            keepAlive = false
            failExchange(status: .requestTimeout, reason: reason, backendFailed: false)
            // The rest of the body is abandoned: the connection closes once the answer is out
            // (at once if its write already finished) instead of reading on to discard it.
            if case .discarding = phase {
                phase = .closed
                if !endWritePending { context.close(promise: nil) }
            }
        case .discarding, .idle, .tunnel, .closed:
            closeNow()
        }
    }

    func tunnelIdleTimedOut() {
        guard case .tunnel = phase else { return }
        loop.traffic.tunnelIdleTimeouts.add(1, ordering: .relaxed)
        clientTunnel?.writeAndClose(nil)
    }

    /// Ends the tunnel if it goes to `backend` (1001 first for a WebSocket); true if it did.
    func closeTunnel(backend address: HostPort) -> Bool {
        guard case .tunnel = phase, let clientTunnel, backend?.backend.address == address else { return false }
        clientTunnel.writeAndClose(upgradeProtocol == "websocket" ? Self.webSocketGoingAway : nil)
        return true
    }

    /// A WebSocket close frame with status 1001 (going away), unmasked as a server sends it.
    static let webSocketGoingAway: [UInt8] = [0x88, 0x02, 0x03, 0xE9]

    /// Ends a tunnel whose scope finished draining; a WebSocket client gets a close frame with
    /// 1001 (going away) first.
    func closeTunnel(deployment: String?) {
        guard case .tunnel = phase, let clientTunnel else { return }
        if let deployment, lastDeployment != deployment { return }
        clientTunnel.writeAndClose(upgradeProtocol == "websocket" ? Self.webSocketGoingAway : nil)
    }

    // MARK: Finishing

    private func finishExchange(trailers: HTTPHeaders?) {
        // A backend that refused an upgrade may, like llhttp, have stopped parsing after it.
        if upgradeProtocol != nil { upstreamReusable = false }
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
            finishLog(status: responseStatus ?? Int(status.code))
            closeNow()
            return
        }
        if bodyStillComing { keepAlive = false }
        writeLocalResponse(status: status, reason: reason, retryAfter: retryAfter, extraHeaders: [])
    }

    /// Writes the response end; the request counts as in flight until the write has finished.
    private func writeEnd(trailers: HTTPHeaders?, status: Int) {
        finishLog(status: status)
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
        headers.add(name: RequestID.headerName, value: requestID)
        // A request whose body has not been read yet cannot share the connection with the next.
        if bodyStillComing || route?.controlPoint.isDraining == true || loop.handingOver { keepAlive = false }
        if !keepAlive { headers.add(name: "connection", value: "close") }
        responseStatus = Int(status.code)
        responseHeadWritten = true
        responseBodyBytes = body.utf8.count
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
        // The connection ended before the response did (nginx's 499: the client went away).
        finishLog(status: 499)
    }

    /// The current request's access-log line, once, as the exchange ends.
    private func finishLog(status: Int) {
        guard var record = logRecord.take() else { return }
        record.bytesIn = max(record.bytesIn, requestBodyBytes)
        record.bytesOut = max(record.bytesOut, responseBodyBytes)
        loop.accessLog?.finish(record, status: status)
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
        responseBodyBytes = 0
        responseStatus = nil
        responseHeadWritten = false
        upstreamReusable = true
        retried = false
        retriesUsed = 0
        upgradeProtocol = nil
        switchingHead = nil
    }

    // MARK: Connection management (called by LoopContext on drains and shutdown)

    func handOver() {
        guard case .idle = phase, requestsServed > 0 else { return }
        closeNow()
    }

    var needsOwnConnection: Bool { upgradeProtocol != nil }

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

    private var bodyStillComing: Bool { requestHasBody && !requestEnded }
}

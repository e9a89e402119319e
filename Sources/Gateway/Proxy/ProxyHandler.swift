import Logging
import NIOCore
import NIOHTTP1
import ProxyRules
import RequestControl

#if canImport(Glibc)
import Glibc
#endif

/// The client side of the proxy for one HTTP/1.1 connection, on bytes: it scans each request head
/// in one pass (`HTTP1HeadScanner`), routes and admits it, writes the backend's head from the
/// client's field lines as bytes (`ForwardedRequestHead`), passes the body through with its
/// framing counted, and writes the backend's response back the same way
/// (`BackendResponseReader`). No HTTP codec sits in either pipeline.
///
/// `HTTP1ConnectionMachine` decides what bytes mean and when the connection goes on; this handler
/// carries out its answers. Routing, admission and the way to a backend (choice, failover,
/// retries) are the `ExchangeCore` HTTP/2 streams use too.
///
/// Every admitted request holds a `RequestToken` until its response end has been written or the
/// request failed, so the drain of a scope waits for exactly the requests that are still running.
final class ProxyHandler: ChannelDuplexHandler, UpstreamDelegate, ClientConnection, ExchangeCarrier, TimerWheelEntry {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let loop: LoopContext
    private let scheme: StaticString
    /// The connection's limits, read from the configuration when it was accepted (a reload
    /// changes them for the connections after it).
    private let limits: ConnectionTimeoutHandler.Limits
    /// What the one deadline of the connection guards, on the loop's timer wheel (see `Clock`).
    private var clock = Clock.idle
    var timerSlot = TimerWheelSlot()
    /// While the request body is due: when it must have made progress by.
    private var bodyDeadline: NIODeadline?
    /// While the request is with the backend: when it must have answered (or sent more) by.
    private var responseDeadline: NIODeadline?
    private var context: ChannelHandlerContext!
    private var clientAddress: String = ""
    private var clientPort = 0
    private var machine: HTTP1ConnectionMachine
    /// Cleartext: the connection may be parked when idle (`IdleParking`; TLS state cannot be).
    private let mayPark: Bool
    /// While idle with parking due: when the idle timeout closes the connection.
    private var idleDeadline = NIODeadline.distantFuture

    /// Bytes read and not yet taken: part of a head, or the requests behind the current one.
    /// Nil between requests when nothing is waiting, so an idle connection holds no buffer.
    private var inbound: ByteBuffer?
    /// How far the buffered part of a head was searched for its end.
    private var headSearchedUpTo = 0
    /// Times the head scanner ran (tests: a head sent a byte at a time is not rescanned per byte).
    private(set) var headScans = 0

    /// The current request's way through the gateway (routing, admission, backend), kept for
    /// the connection's life and reset per request.
    private var core: ExchangeCore!
    /// The token of a response whose end is being written; completed when the write finishes.
    private var finishingToken: RequestToken?
    /// The head the backend gets, kept for a retry on another connection.
    private var upstreamHeadBytes: ByteBuffer?
    /// Body bytes that came while the backend connection was on its way.
    private var pendingBody: [ByteBuffer] = []
    private(set) var requestBodyForwarded = false
    private(set) var requestHasBody = false
    private(set) var requestIsIdempotent = false
    private var chunkScanner: ChunkedBodyScanner?
    private var requestBodyBytes = 0
    private var responseReader: BackendResponseReader?
    /// The backend's response allows the connection to carry the next request.
    private var upstreamReusable = true
    /// The backend's body is re-framed as chunked for the client (it runs until the close).
    private var rechunkResponse = false
    private var responseStatus: Int?
    private var readPending = false
    private var lastDeployment: String?
    /// The protocol a client asked to upgrade to (`Upgrade:`) and the gateway tunnels, lower-cased.
    private var upgradeProtocol: String?
    private var clientTunnel: TunnelHandler?
    private var backendTunnel: TunnelHandler?
    /// The current request's id (see `RequestID`), on its way to the backend and back.
    private var requestID = RequestIDValue(prefix: 0, counter: 0)
    /// The current request's access-log record, while it runs; nil without an access log.
    private var logRecord: AccessLogRecord?
    /// Body bytes of the current response written to the client.
    private var responseBodyBytes = 0

    /// `resumed`: the connection comes back from `IdleParking` and goes on from what it kept.
    init(loop: LoopContext, scheme: StaticString = "http", resumed: ParkedConnection? = nil) {
        self.loop = loop
        self.limits = .init(loop.timeouts)
        self.scheme = scheme
        self.mayPark = scheme.description == "http"
        if let resumed {
            machine = HTTP1ConnectionMachine(resumedAfter: resumed.requestsServed)
            lastDeployment = resumed.lastDeployment
            clientAddress = resumed.clientAddress
            clientPort = resumed.clientPort
            idleDeadline = .uptimeNanoseconds(resumed.idleDeadline)
        } else {
            machine = HTTP1ConnectionMachine()
        }
        self.core = ExchangeCore(loop: loop, carrier: self)
    }

    private var upstream: UpstreamConnection? { core.upstream }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if clientAddress.isEmpty, let remote = context.channel.remoteAddress {
            clientAddress = remote.ipAddress ?? ""
            clientPort = remote.port ?? 0
        }
        loop.register(self)
        if context.channel.isActive { startIdleClock() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stopClock()
        loop.unregister(self)
        // The context holds this handler: kept, the two (and the pipeline, and the last
        // request) outlived the connection.
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        startIdleClock()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if machine.isTunnel {
            // The upgraded connection lived out its life: that is the request's success.
            core.releaseBackend(failed: false)
            core.token.take()?.complete(status: 101)
            logRecord?.bytesIn = clientTunnel?.bytesRead ?? 0
            logRecord?.bytesOut = backendTunnel?.bytesRead ?? 0
            finishLog(status: 101)
        }
        machine.closed()
        stopClock()
        abortExchange()
        finishingToken.take()?.complete(status: nil)
        inbound = nil
        loop.unregister(self)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        abortExchange()
        machine.closed()
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        clientBytesArrived()
        var bytes = unwrapInboundIn(data)
        if inbound == nil {
            inbound = bytes
        } else {
            inbound!.writeBuffer(&bytes)
        }
        processInbound()
    }

    /// Takes what the buffered bytes complete, as far as the state allows.
    private func processInbound() {
        while let buffered = inbound, buffered.readableBytes > 0 {
            switch machine.inboundAction() {
            case .scanHead:
                if !scanHead() { return }
            case .body:
                if !takeBody(forward: true) { return }
            case .discardBody:
                if !takeBody(forward: false) { return }
            case .wait:
                return
            case .tunnel, .drop:
                inbound = nil
                return
            }
        }
        // Everything taken: an idle connection keeps no buffer.
        if let buffered = inbound, buffered.readableBytes == 0 { inbound = nil }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if machine.isProxying { upstream?.channel.flush() }
        context.fireChannelReadComplete()
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
            readRequested()
            context.read()
        }
    }

    private var shouldHoldReads: Bool {
        machine.holdsReads(
            backendWritable: upstream?.channel.isWritable ?? true, bytesWaiting: (inbound?.readableBytes ?? 0) > 0)
    }

    private func resumeReadsIfPossible() {
        guard readPending, !shouldHoldReads else { return }
        readPending = false
        readRequested()
        context.read()
    }

    // MARK: Request head

    /// Scans a head from `inbound`; false when more bytes are needed or the connection ended.
    private func scanHead() -> Bool {
        let maxHead = loop.limits.maxHeaderBytes
        // A head arriving in pieces is scanned again from its start each time: only once the
        // bytes hold its end (an LF, an optional CR and an LF), or are over the limit (431).
        // Scanning on every read let a client sending a byte at a time cost work quadratic in
        // the head's size.
        let buffered = inbound!.readableBytes
        if buffered <= maxHead, !inbound!.withUnsafeReadableBytes({ HTTP1HeadScanner.mayHoldEnd($0, from: headSearchedUpTo) }) {
            headSearchedUpTo = buffered
            return false
        }
        headSearchedUpTo = 0
        headScans += 1
        loop.headFields.removeAll(keepingCapacity: true)
        let result = inbound!.withUnsafeReadableBytes { raw in
            HTTP1HeadScanner.scanRequest(raw, maxHeadBytes: maxHead, fields: &loop.headFields)
        }
        switch result {
        case .incomplete:
            return false
        case .invalid(let error):
            answerParseError(error)
            return false
        case .complete(let head):
            receivedHead(head)
            return true
        }
    }

    private func receivedHead(_ head: HTTP1RequestHead) {
        loop.traffic.http1Requests.add(1, ordering: .relaxed)
        resetRequestState()
        let fields = loop.headFields
        let http10 = head.minorVersion == 0
        let keepAlive = http10 ? head.connection.keepAlive && !head.connection.close : !head.connection.close
        let body: HTTP1ConnectionMachine.BodyLeft =
            switch head.framing {
            case .none, .length(0), .untilClose: .ended
            case .length(let count): .length(remaining: count)
            case .chunked: .chunked
            }
        let (isHead, isConnect, idempotent) = inbound!.withUnsafeReadableBytes { raw in
            let method = raw[head.method]
            return (HTTP1Method.equals(method, "HEAD"), HTTP1Method.equals(method, "CONNECT"), HTTP1Method.isIdempotent(method))
        }
        machine.requestHead(http10: http10, headRequest: isHead, keepAlive: keepAlive, body: body)
        requestIsIdempotent = idempotent
        requestHasBody = body != .ended
        if case .chunked = body { chunkScanner = ChunkedBodyScanner() }
        // The head is in; a body to come is timed while it is read, else nothing is until the
        // backend has the request.
        stopClock()
        clock = .exchange
        bodyDeadline = nil
        responseDeadline = nil

        let headBytes = inbound!.readSlice(length: head.length)!
        headBytes.withUnsafeReadableBytes { raw in
            requestID = RequestID.resolve(
                given: head.requestID.map { String(decoding: raw[$0], as: UTF8.self) },
                count: head.requestID == nil ? 0 : fields.reduce(0) { $0 + ($1.kind == .xRequestID ? 1 : 0) },
                generator: &loop.requestIDs)
            if let accessLog = loop.accessLog, accessLog.isWriting {
                logRecord = accessLog.start(
                    requestID: requestID.string, clientIP: clientAddress, clientPort: clientPort,
                    method: String(decoding: raw[head.method], as: UTF8.self),
                    path: String(decoding: raw[head.target], as: UTF8.self),
                    httpVersion: http10 ? "HTTP/1.0" : "HTTP/1.1",
                    referer: Self.value(of: "referer", fields: fields, bytes: raw),
                    userAgent: Self.value(of: "user-agent", fields: fields, bytes: raw))
            }
        }
        if isConnect {
            // A tunnel to anywhere is not this gateway's business: a framed 405, and the
            // connection closes.
            machine.mustClose()
            writeLocalResponse(
                LocalAnswer(
                    status: .methodNotAllowed, reason: "CONNECT is not supported",
                    extraHeaders: [("allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")]))
            return
        }
        headBytes.withUnsafeReadableBytes { raw in
            routeAndAdmit(head, fields: fields, bytes: raw, http10: http10)
        }
    }

    private func routeAndAdmit(_ head: HTTP1RequestHead, fields: [HTTP1Field], bytes raw: UnsafeRawBufferPointer, http10: Bool) {
        guard HTTP1Method.isKnown(raw[head.method]) else {
            writeLocalResponse(
                LocalAnswer(status: .notImplemented, reason: "method \(String(decoding: raw[head.method], as: UTF8.self)) is not supported"))
            return
        }
        let plan: ForwardedRequestHead.Plan
        switch ForwardedRequestHead.plan(head, bytes: raw) {
        case .success(let planned):
            plan = planned
        case .failure(let refusal):
            machine.mustClose()
            writeLocalResponse(LocalAnswer(status: .badRequest, reason: refusal.reason))
            return
        }
        let targetOverride = plan.target
        let hostOverride = plan.host
        let target = raw[head.target]

        let router = loop.router
        var routingHost: String?
        if router.usesHosts {
            if let hostOverride { routingHost = HostName.normalize(hostOverride) } else if let host = head.host {
                routingHost = HostName.normalize(raw[host])
            }
        }
        let found: Router.Route?
        if var path = targetOverride {
            found = path.withUTF8 { router.route(host: routingHost, path: UnsafeRawBufferPointer($0), method: raw[head.method]) }
        } else {
            found = router.route(host: routingHost, path: UnsafeRawBufferPointer(rebasing: target), method: raw[head.method])
        }
        let declaredLength: Int? = if case .length(let count) = head.framing { count } else { nil }
        if let answer = core.admit(
            found, declaredLength: declaredLength,
            noRoute: {
                let hostText = hostOverride ?? head.host.map { String(decoding: raw[$0], as: UTF8.self) } ?? "(none)"
                return "no route for host \(hostText) and path \(targetOverride ?? String(decoding: target, as: UTF8.self))"
            }, log: &logRecord)
        {
            writeLocalResponse(answer)
            return
        }
        lastDeployment = core.route?.deployment.name

        // Upgrade is hop-by-hop, but a tunnel needs the backend to see it. Upgrades the gateway
        // does not tunnel (h2c above all: RFC 9113 deprecates it) are not passed on; the request
        // is answered over HTTP/1.1.
        var upgrade: Range<Int>?
        if head.connection.upgrade, let asked = head.upgrade {
            let name = String(decoding: raw[asked], as: UTF8.self)
            if loop.upgradeProtocols.contains(where: { HeaderName.equals($0, name) }) {
                upgrade = asked
                upgradeProtocol = name.lowercased()
            }
        }
        var out = context.channel.allocator.buffer(capacity: head.length + 192)
        requestID.withBytes { id in
            ForwardedRequestHead.write(
                head, fields: fields, bytes: raw,
                additions: .init(
                    target: targetOverride, host: hostOverride, clientAddress: clientAddress, scheme: scheme, requestID: id,
                    upgrade: upgrade, body: plan.body),
                into: &out)
        }
        upstreamHeadBytes = out

        // The gateway answers 100-continue itself once the request is admitted, so a refused
        // client never sends its body (and the backend never needs to speak 100-continue). An
        // HTTP/1.0 client does not know 100 (RFC 9110 10.1.1): it just sends its body.
        if !http10, head.expectContinue {
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(staticString: "HTTP/1.1 100 Continue\r\n\r\n")), promise: nil)
        }
        core.connectUpstream()
    }

    /// The value of the first field called `name` (lower-case), as a String; for the access log.
    static func value(of name: StaticString, fields: [HTTP1Field], bytes: UnsafeRawBufferPointer) -> String? {
        for field in fields where field.kind == .other && field.hasName(name, in: bytes) {
            return String(decoding: bytes[field.value], as: UTF8.self)
        }
        return nil
    }

    // MARK: Request body

    /// Takes the current request's body bytes from `inbound`: to the backend (or kept for it), or
    /// dropped after a local answer. False when nothing more can be taken now.
    private func takeBody(forward: Bool) -> Bool {
        guard var buffered = inbound, let request = machine.request else { return false }
        var slice: ByteBuffer
        var payload = 0
        var ended = false
        switch request.body {
        case .ended:
            return false
        case .length(let remaining):
            let count = min(remaining, buffered.readableBytes)
            slice = buffered.readSlice(length: count)!
            payload = count
            ended = count == remaining
            if !ended { machine.bodyProgress(.length(remaining: remaining - count)) }
        case .chunked:
            var scanner = chunkScanner ?? ChunkedBodyScanner()
            let before = scanner.payloadBytes
            let result = buffered.withUnsafeReadableBytes { raw in scanner.scan(raw) { _ in } }
            chunkScanner = scanner
            switch result {
            case .failure(let error):
                inbound = nil
                answerBodyError(error)
                return false
            case .success(let step):
                if step.consumed == 0 {
                    // A size line cut in two: wait for the rest.
                    return false
                }
                slice = buffered.readSlice(length: step.consumed)!
                payload = scanner.payloadBytes - before
                ended = step.finished
            }
        }
        inbound = buffered
        requestBodyBytes += payload
        if forward {
            if let maxBody = loop.limits.maxBodyBytes, requestBodyBytes > maxBody {
                failExchange(status: .payloadTooLarge, reason: "request body exceeds \(maxBody) bytes", backendFailed: false)
            } else if machine.isProxying, let upstream {
                requestBodyForwarded = true
                upstream.channel.write(slice, promise: nil)
            } else if machine.isAwaitingBackend {
                pendingBody.append(slice)
            }
        } else if requestBodyBytes > Self.discardLimit {
            // The answer is out; a client that keeps uploading past this is cut off.
            closeNow()
            return false
        }
        if ended { receivedEnd() }
        return true
    }

    /// How much of a refused request's body is read and dropped before the connection is closed.
    static let discardLimit = 1 << 20

    private func receivedEnd() {
        if bodyDeadline != nil {
            bodyDeadline = nil
            rescheduleExchangeClock()
        }
        switch machine.bodyEnded() {
        case .becameIdle:
            becameIdle()
            return
        case .close:
            closeNow()
            return
        case .none:
            break
        }
        if machine.isProxying, let upstream {
            upstream.channel.flush()
            armResponseTimer()
        }
    }

    /// The connection is idle again: the keep-alive timer runs, and a pipelined request goes next
    /// (after the current call stack, never inside the write that finished the last response).
    private func becameIdle() {
        idleDeadline = .distantFuture
        startIdleClock()
        if let buffered = inbound, buffered.readableBytes > 0 {
            context.eventLoop.assumeIsolated().execute { [self] in
                processInbound()
                resumeReadsIfPossible()
            }
        } else {
            inbound = nil
            resumeReadsIfPossible()
        }
    }

    // MARK: Parse errors

    /// A head the scanner refused: 400 (431 when too large, 501 for a transfer coding the
    /// gateway cannot pass on, 505 for a version it does not speak); the byte stream can no longer
    /// be trusted, so the connection closes after the answer.
    private func answerParseError(_ error: HTTP1ScanError) {
        inbound = nil
        let status = HTTPResponseStatus(statusCode: error.status)
        let answer = LocalAnswer(status: status, reason: error.reason)
        requestID = loop.requestIDs.nextValue()
        // Without a request head no id came: the answer still carries one, to quote, and the
        // access log has the line (method and path unknown: "-").
        if let accessLog = loop.accessLog, accessLog.isWriting {
            logRecord = accessLog.start(
                requestID: requestID.string, clientIP: clientAddress, clientPort: clientPort, method: "-", path: "-",
                httpVersion: "HTTP/1.1", referer: nil, userAgent: nil)
        }
        writeFinalAnswer(answer)
    }

    /// A broken body: answered like a broken head when nothing of the response went out yet, else
    /// the connection is cut.
    private func answerBodyError(_ error: HTTP1ScanError) {
        inbound = nil
        let started = machine.request?.responseStarted ?? true
        abortExchangeKeepingLog()
        if started {
            finishLog(status: responseStatus ?? 499)
            closeNow()
            return
        }
        writeFinalAnswer(LocalAnswer(status: HTTPResponseStatus(statusCode: error.status), reason: error.reason))
    }

    /// An answer after which the connection closes, whatever state it was in.
    private func writeFinalAnswer(_ answer: LocalAnswer) {
        let body = answer.bodyText
        let response = HTTP1LocalResponse.render(
            answer, http10: false, requestID: requestID, close: true, headRequest: false, allocator: context.channel.allocator)
        responseBodyBytes = body.utf8.count
        if var record = logRecord.take() {
            record.bytesIn = max(record.bytesIn, requestBodyBytes)
            record.bytesOut = responseBodyBytes
            loop.accessLog?.finish(record, status: Int(answer.status.code))
        }
        machine.closed()
        context.writeAndFlush(wrapOutboundOut(response)).assumeIsolated().whenComplete { [context] _ in
            context?.close(promise: nil)
        }
    }

    // MARK: Upstream connection

    func attach(_ connection: UpstreamConnection) {
        guard let head = upstreamHeadBytes, let request = machine.request else { return }
        connection.handler.delegate = self
        machine.backendAttached()
        responseReader = BackendResponseReader(
            requestIsHead: request.headRequest, keepChunkFraming: !request.http10, maxHeadBytes: Self.maxResponseHeadBytes)
        logRecord?.backend = connection.backend
        connection.channel.write(head, promise: nil)
        if !pendingBody.isEmpty {
            requestBodyForwarded = true
            for part in pendingBody { connection.channel.write(part, promise: nil) }
            pendingBody.removeAll()
        }
        connection.channel.flush()
        if request.body == .ended { armResponseTimer() }
        // Body bytes that waited in `inbound` for the connection go now.
        processInbound()
        resumeReadsIfPossible()
    }

    /// The largest response head taken from a backend.
    static let maxResponseHeadBytes = 64 * 1024

    // MARK: UpstreamDelegate

    var clientIsWritable: Bool { context.channel.isWritable }

    func upstreamReadComplete() {
        if machine.isProxying { context.flush() }
    }

    func upstreamWritabilityChanged(isWritable: Bool) {
        if isWritable { resumeReadsIfPossible() }
    }

    func upstreamReceived(_ bytes: ByteBuffer) {
        guard machine.isProxying, var reader = responseReader.take() else { return }
        armResponseTimer()
        var ended = false
        do {
            try reader.read(bytes, scratch: &loop.headFields) { event in
                switch event {
                case .head(let head, let headBytes, let fields, let framing):
                    try responseHead(head, bytes: headBytes, fields: fields, framing: framing)
                case .body(let body):
                    writeResponseBody(body)
                case .end:
                    ended = true
                }
            }
        } catch {
            guard machine.isProxying else { return }
            if ended {
                // A complete response with bytes behind it: the backend is confused; the response
                // stands, the connection is not reused.
                upstreamReusable = false
                finishExchange()
            } else {
                upstreamFailed(error: error)
            }
            return
        }
        // A failure answered meanwhile (an unexpected 101) ended the exchange.
        guard machine.isProxying else { return }
        if ended {
            finishExchange()
        } else if switchPending {
            switchPending = false
            startTunnel(leftover: reader.switchedBytes)
        } else {
            responseReader = reader
        }
    }

    /// A 101 head arrived for an upgrade the gateway asked for; the tunnel starts after this read.
    private var switchPending = false
    /// The 101's head, written to the client as the tunnel starts.
    private var switchingHead: ByteBuffer?

    private struct UnexpectedSwitch: Error {}

    private func responseHead(_ head: HTTP1ResponseHead, bytes: ByteBuffer, fields: [HTTP1Field], framing: HTTP1BodyFraming) throws {
        guard let request = machine.request else { return }
        if head.status < 200 {
            if head.status == 101 {
                guard upgradeProtocol != nil else {
                    failExchange(status: .badGateway, reason: "backend switched protocols without being asked", backendFailed: true)
                    throw UnexpectedSwitch()
                }
                switchingHead = Self.clientHead(head, fields: fields, bytes: bytes, http10: false, requestID: requestID,
                    upgrade: upgradeProtocol, close: false, chunked: false, allocator: context.channel.allocator)
                switchPending = true
                return
            }
            // 100 Continue was already answered by the gateway; other 1xx (103) pass through.
            if head.status != 100, !request.http10 {
                let interim = Self.clientHead(head, fields: fields, bytes: bytes, http10: false, requestID: nil, upgrade: nil,
                    close: false, chunked: false, allocator: context.channel.allocator)
                context.writeAndFlush(wrapOutboundOut(interim), promise: nil)
            }
            return
        }
        let backendKeepAlive = head.minorVersion == 0 ? head.connection.keepAlive && !head.connection.close : !head.connection.close
        if !backendKeepAlive || framing == .untilClose { upstreamReusable = false }
        responseStatus = head.status
        if core.route?.controlPoint.isDraining == true || loop.handingOver { machine.mustClose() }
        // A body whose length only the close tells: an HTTP/1.1 client gets it chunked (the
        // connection goes on); an HTTP/1.0 client reads to the close. A chunked body goes to an
        // HTTP/1.1 client as it came, and to an HTTP/1.0 client as its payload, then the close.
        switch framing {
        case .untilClose:
            if request.http10 { machine.mustClose() } else { rechunkResponse = true }
        case .chunked:
            if request.http10 { machine.mustClose() }
        case .none, .length:
            break
        }
        let close = machine.responseHeadWritten(local: false)
        let chunked = !request.http10 && (framing == .chunked || framing == .untilClose)
        let out = Self.clientHead(
            head, fields: fields, bytes: bytes, http10: request.http10, requestID: requestID, upgrade: nil, close: close,
            keepAlive10: request.http10 && !close, chunked: chunked, allocator: context.channel.allocator)
        context.write(wrapOutboundOut(out), promise: nil)
    }

    /// The head the client gets for a backend's response: the status line in the client's
    /// version, the backend's field lines less the hop-by-hop ones (and those `Connection` names)
    /// and its `X-Request-Id`, then the gateway's.
    static func clientHead(
        _ head: HTTP1ResponseHead, fields: [HTTP1Field], bytes: ByteBuffer, http10: Bool, requestID: RequestIDValue?,
        upgrade: String?, close: Bool, keepAlive10: Bool = false, chunked: Bool, allocator: ByteBufferAllocator
    ) -> ByteBuffer {
        var out = allocator.buffer(capacity: bytes.readableBytes + 96)
        bytes.withUnsafeReadableBytes { raw in
            out.writeStaticString(http10 ? "HTTP/1.0 " : "HTTP/1.1 ")
            out.writeDecimal(head.status)
            out.writeInteger(UInt8(ascii: " "))
            out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[head.reason]))
            out.writeCRLF()
            for field in fields {
                guard ForwardedResponseHead.keeps(field, of: head, fields: fields, bytes: raw) else { continue }
                out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[field.line]))
            }
        }
        if chunked { out.writeField("transfer-encoding", "chunked") }
        if let requestID { out.writeField("x-request-id", requestID) }
        if let upgrade {
            out.writeField("connection", "upgrade")
            if let asked = head.upgrade {
                out.writeStaticString("upgrade: ")
                var value = bytes.getSlice(at: bytes.readerIndex + asked.lowerBound, length: asked.count)!
                out.writeBuffer(&value)
                out.writeCRLF()
            } else {
                out.writeField("upgrade", upgrade)
            }
        } else if close {
            out.writeField("connection", "close")
        } else if keepAlive10 {
            out.writeField("connection", "keep-alive")
        }
        out.writeCRLF()
        return out
    }

    private func writeResponseBody(_ body: ByteBuffer) {
        guard let request = machine.request, !request.headRequest else { return }
        if rechunkResponse {
            guard body.readableBytes > 0 else { return }
            var size = context.channel.allocator.buffer(capacity: 12)
            size.writeChunkSize(body.readableBytes)
            context.write(wrapOutboundOut(size), promise: nil)
            context.write(wrapOutboundOut(body), promise: nil)
            context.write(wrapOutboundOut(context.channel.allocator.buffer(staticString: "\r\n")), promise: nil)
        } else {
            context.write(wrapOutboundOut(body), promise: nil)
        }
        responseBodyBytes += body.readableBytes
    }

    private func upstreamFailed(error: Error) {
        if let failure = error as? BackendResponseReader.Failure {
            if case .closedEarly = failure {
                core.backendClosed(error: nil)
                return
            }
            failExchange(status: .badGateway, reason: "backend sent a \(failure)", backendFailed: true)
            return
        }
        // A failure already answered (an unexpected 101).
    }

    // MARK: ExchangeCarrier

    var responseStarted: Bool { machine.request?.responseStarted ?? false }
    var isConnecting: Bool { machine.isAwaitingBackend }
    var isProxying: Bool { machine.isProxying }
    var requestEnded: Bool { machine.request.map { $0.body == .ended } ?? true }
    func enterConnecting() {
        machine.awaitBackend()
        responseReader = nil
    }

    /// The backend connection closed: a body that runs until the close ends here; otherwise the
    /// shared rules decide (retry on a fresh connection, another backend, or 502).
    func upstreamClosed(error: Error?) {
        if machine.isProxying, let reader = responseReader, reader.readsUntilClose {
            _ = core.takeUpstream()
            upstreamReusable = false
            finishExchange()
            return
        }
        core.backendClosed(error: error)
    }

    // MARK: Upgrades

    /// The backend accepted the upgrade: answer 101 to the client and turn both connections into
    /// a byte tunnel. The request stays in flight (and counted) until the tunnel closes, so a
    /// drain waits for it up to its timeout and then closes it (`closeTunnel`).
    private func startTunnel(leftover: ByteBuffer?) {
        guard machine.isProxying, let head = switchingHead, let connection = core.takeUpstream() else { return }
        switchingHead = nil
        responseStatus = 101
        machine.tunnelStarted()
        context.write(wrapOutboundOut(head), promise: nil)
        if let leftover { context.write(wrapOutboundOut(leftover), promise: nil) }
        context.flush()

        let clientSide = TunnelHandler()
        let backendSide = TunnelHandler()
        clientSide.peer = backendSide
        backendSide.peer = clientSide
        clientTunnel = clientSide
        backendTunnel = backendSide
        startClock(.tunnel, limits.tunnelIdle)
        // Weak: the backend's side may read a last time after the client's connection is gone.
        clientSide.onRead = { [weak self] in self?.tunnelActivity() }
        backendSide.onRead = { [weak self] in self?.tunnelActivity() }
        connection.handler.delegate = nil
        do {
            let upstreamPipeline = connection.channel.pipeline.syncOperations
            try upstreamPipeline.addHandler(backendSide)
            try context.pipeline.syncOperations.addHandler(clientSide, position: .before(self))
            _ = upstreamPipeline.removeHandler(connection.handler)
        } catch {
            loop.logger.error("cannot set up upgrade tunnel", metadata: ["error": "\(error)"])
            connection.channel.close(promise: nil)
            closeNow()
            return
        }
        // Bytes the client sent after its request are the tunnel's first.
        if var early = inbound, early.readableBytes > 0 {
            inbound = nil
            connection.channel.writeAndFlush(early.readSlice(length: early.readableBytes)!, promise: nil)
        }
        inbound = nil
        connection.channel.read()
        context.read()
    }

    // MARK: Timeouts

    /// What the connection's one deadline on its loop's timer wheel guards, by state:
    /// - `idle` between requests on a keep-alive connection: the connection is closed;
    /// - `head`, from the first byte of a request until its head is scanned: a slowloris client
    ///   gets 408 and the connection is closed;
    /// - `exchange`, the earlier of two:
    ///   - the request body, while it is still coming: no progress for `request_body` while the
    ///     gateway is willing to read gets 408. Time in which the gateway itself holds reads (a
    ///     backend that takes the body slowly, a connect in progress) never counts against the
    ///     client: the clock runs from a read request to the next bytes;
    ///   - the backend must answer, and go on answering, within `backend_response` (504);
    /// - `tunnel`: no byte either way for `tunnel_idle` closes the tunnel.
    ///
    /// Starting, moving and stopping the deadline costs no allocation and no NIO timer (one per
    /// connection used to be a task, a promise and closures, and a reschedule per request).
    ///
    /// While idle a cleartext connection first waits `park_idle` (`park`), then leaves its channel
    /// for `IdleParking`, which keeps the rest of the idle deadline.
    enum Clock: Equatable {
        case idle, park, head, exchange, tunnel
    }

    /// Idle: parking comes first when it is due before the idle timeout.
    private func startIdleClock() {
        let now = NIODeadline.now()
        if idleDeadline == .distantFuture { idleDeadline = now + limits.idle }
        if mayPark, loop.parking != nil, limits.parkIdle > .zero, now + limits.parkIdle < idleDeadline {
            // From the `now` already read: one clock read per request, not two.
            clock = .park
            loop.timers.schedule(self, deadline: now + limits.parkIdle)
        } else {
            clock = .idle
            loop.timers.schedule(self, deadline: idleDeadline)
        }
    }

    /// Parks the idle connection (see `IdleParking`) when nothing of it is left in the gateway
    /// but its socket: no request, nothing buffered either way, not handing over. True if it went.
    private func park() -> Bool {
        guard let context, let parking = loop.parking, machine.isIdle, inbound == nil, !loop.handingOver,
            context.channel.isActive,
            (try? context.channel.syncOptions?.getOption(.bufferedWritableBytes)) == 0
        else { return false }
        // A copy of the socket, so that closing the channel leaves it open (the client sees nothing).
        let copy = try? context.pipeline.syncOperations.withUnsafeTransportIfAvailable(of: NIOBSDSocket.Handle.self) {
            fcntl($0, F_DUPFD_CLOEXEC, 0)
        }
        guard let copy = copy ?? nil, copy >= 0 else { return false }
        let parked = ParkedConnection(
            loop: loop.parkingIndex, idleDeadline: idleDeadline.uptimeNanoseconds, requestsServed: machine.requestsServed,
            lastDeployment: lastDeployment, clientAddress: clientAddress, clientPort: clientPort)
        guard parking.park(copy, parked) else {
            Glibc.close(copy)
            return false
        }
        machine.closed()
        stopClock()
        context.close(promise: nil)
        return true
    }

    private func startClock(_ kind: Clock, _ amount: TimeAmount) {
        clock = kind
        loop.timers.schedule(self, in: amount)
    }

    private func moveClock(_ amount: TimeAmount) {
        loop.timers.schedule(self, in: amount)
    }

    private func stopClock() {
        loop.timers.cancel(self)
    }

    /// The wheel's deadline for an exchange: the earlier of the body's and the response's.
    private func rescheduleExchangeClock() {
        guard clock == .exchange else { return }
        switch (bodyDeadline, responseDeadline) {
        case (nil, nil): stopClock()
        case (let body?, nil): loop.timers.schedule(self, deadline: body)
        case (nil, let response?): loop.timers.schedule(self, deadline: response)
        case (let body?, let response?): loop.timers.schedule(self, deadline: min(body, response))
        }
    }

    /// Bytes came from the client.
    private func clientBytesArrived() {
        switch clock {
        case .idle, .park:
            startClock(.head, limits.requestHeader)
        case .exchange:
            // Progress: the body's clock restarts at the next read request.
            if bodyDeadline != nil {
                bodyDeadline = nil
                rescheduleExchangeClock()
            }
        case .tunnel:
            moveClock(limits.tunnelIdle)
        case .head:
            break
        }
    }

    private func tunnelActivity() {
        if clock == .tunnel, machine.isTunnel { moveClock(limits.tunnelIdle) }
    }

    /// A read goes to the socket: a body that is due runs against the client from now.
    private func readRequested() {
        guard clock == .exchange, bodyDeadline == nil, !requestEnded else { return }
        bodyDeadline = .now() + limits.requestBody
        rescheduleExchangeClock()
    }

    func timerFired(now: UInt64) {
        guard let context, context.channel.isActive else { return }
        switch clock {
        case .idle:
            closeNow()
        case .park:
            if !park() {
                clock = .idle
                loop.timers.schedule(self, deadline: idleDeadline)
            }
        case .head:
            // A head that does not come: 408, and the connection closes.
            machine.closed()
            inbound = nil
            let response = context.channel.allocator.buffer(
                staticString: "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
            context.writeAndFlush(wrapOutboundOut(response)).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        case .exchange:
            let deadline = NIODeadline.uptimeNanoseconds(now)
            if let body = bodyDeadline, body <= deadline {
                bodyDeadline = nil
                requestBodyTimedOut()
            } else if let response = responseDeadline, response <= deadline, machine.isProxying {
                responseDeadline = nil
                failExchange(
                    status: .gatewayTimeout, reason: "backend did not answer within \(loop.timeouts.backendResponse)",
                    backendFailed: true)
            } else {
                rescheduleExchangeClock()
            }
        case .tunnel:
            tunnelIdleTimedOut()
        }
    }

    func requestBodyTimedOut() {
        loop.traffic.requestBodyTimeouts.add(1, ordering: .relaxed)
        let reason = "request body made no progress for \(loop.timeouts.requestBody)"
        if machine.isAwaitingBackend || machine.isProxying {
            machine.mustClose()
            failExchange(status: .requestTimeout, reason: reason, backendFailed: false)
            // The rest of the body is abandoned: the connection closes once the answer is out
            // instead of reading on to discard it.
            if case .discarding(let request) = machine.state {
                machine.closed()
                inbound = nil
                if !request.endWritePending { context.close(promise: nil) }
            }
        } else {
            closeNow()
        }
    }

    func tunnelIdleTimedOut() {
        guard machine.isTunnel else { return }
        loop.traffic.tunnelIdleTimeouts.add(1, ordering: .relaxed)
        clientTunnel?.writeAndClose(nil)
    }

    /// Ends the tunnel if it goes to `backend` (1001 first for a WebSocket); true if it did.
    func closeTunnel(backend address: HostPort) -> Bool {
        guard machine.isTunnel, let clientTunnel, core.backend?.backend.address == address else { return false }
        clientTunnel.writeAndClose(upgradeProtocol == "websocket" ? Self.webSocketGoingAway : nil)
        return true
    }

    /// A WebSocket close frame with status 1001 (going away), unmasked as a server sends it.
    static let webSocketGoingAway: [UInt8] = [0x88, 0x02, 0x03, 0xE9]

    /// Ends a tunnel whose scope finished draining; a WebSocket client gets a close frame with
    /// 1001 (going away) first.
    func closeTunnel(deployment: String?) {
        guard machine.isTunnel, let clientTunnel else { return }
        if let deployment, lastDeployment != deployment { return }
        clientTunnel.writeAndClose(upgradeProtocol == "websocket" ? Self.webSocketGoingAway : nil)
    }

    // MARK: Finishing

    private func finishExchange() {
        // A backend that refused an upgrade may have stopped parsing after it.
        if upgradeProtocol != nil { upstreamReusable = false }
        clearResponseDeadline()
        responseReader = nil
        core.finishWithBackend(reusable: upstreamReusable)
        if rechunkResponse {
            context.write(wrapOutboundOut(context.channel.allocator.buffer(staticString: "0\r\n\r\n")), promise: nil)
        }
        writeEnd(status: responseStatus ?? 502)
    }

    /// Ends the current exchange with a local error response when nothing was sent to the client
    /// yet, or by closing the connection when a response is already under way.
    func failExchange(status: HTTPResponseStatus, reason: String, backendFailed: Bool, retryAfter: Int? = nil) {
        clearResponseDeadline()
        core.dropUpstream()
        responseReader = nil
        pendingBody.removeAll()
        core.releaseBackend(failed: backendFailed)
        if responseStarted {
            core.token.take()?.complete(status: Int(status.code))
            finishLog(status: responseStatus ?? Int(status.code))
            closeNow()
            return
        }
        writeLocalResponse(LocalAnswer(status: status, reason: reason, retryAfter: retryAfter))
    }

    /// Writes the response end; the request counts as in flight until the write has finished.
    private func writeEnd(status: Int) {
        finishLog(status: status)
        finishingToken.take()?.complete(status: status)
        finishingToken = core.token.take()
        machine.responseEndWriting()
        context.flush()
        // Nearly always the flush put the whole response into the socket, and its end is written
        // now: no promise is needed (a promise, its future and the callback were three of the
        // allocations of every request). Otherwise an empty write queued behind what is still
        // pending says when it is; its buffer is the loop's, so it costs no allocation.
        if (try? context.channel.syncOptions?.getOption(.bufferedWritableBytes)) == 0 {
            responseEndWritten(status: status, succeeded: true)
            return
        }
        context.writeAndFlush(wrapOutboundOut(loop.emptyBuffer)).assumeIsolated().whenComplete {
            [self] result in
            if case .success = result {
                responseEndWritten(status: status, succeeded: true)
            } else {
                responseEndWritten(status: status, succeeded: false)
            }
        }
    }

    /// The response's last byte is in the socket (or the connection failed under it).
    private func responseEndWritten(status: Int, succeeded: Bool) {
        finishingToken.take()?.complete(status: succeeded ? status : nil)
        switch machine.responseEndWritten() {
        case .close: context.close(promise: nil)
        case .becameIdle: becameIdle()
        case .none: resumeReadsIfPossible()
        }
    }

    /// A response the gateway produces itself: routing misses, refusals, backend failures.
    private func writeLocalResponse(_ answer: LocalAnswer) {
        guard let request = machine.request else { return }
        // A request whose body has not been read yet cannot share the connection with the next.
        if core.route?.controlPoint.isDraining == true || loop.handingOver { machine.mustClose() }
        let close = machine.responseHeadWritten(local: true)
        responseStatus = Int(answer.status.code)
        responseBodyBytes = request.headRequest ? 0 : answer.bodyText.utf8.count
        let response = HTTP1LocalResponse.render(
            answer, http10: request.http10, requestID: requestID, close: close, headRequest: request.headRequest,
            allocator: context.channel.allocator)
        context.write(wrapOutboundOut(response), promise: nil)
        writeEnd(status: Int(answer.status.code))
    }

    /// The backend must answer (or send more of its response) within `backend_response`.
    private func armResponseTimer() {
        responseDeadline = .now() + TimeAmount(loop.timeouts.backendResponse)
        rescheduleExchangeClock()
    }

    private func clearResponseDeadline() {
        guard responseDeadline != nil else { return }
        responseDeadline = nil
        rescheduleExchangeClock()
    }

    /// Releases everything the current exchange holds after the client went away.
    private func abortExchange() {
        abortExchangeKeepingLog()
        // The connection ended before the response did (nginx's 499: the client went away).
        finishLog(status: 499)
    }

    private func abortExchangeKeepingLog() {
        core.dropUpstream()
        responseReader = nil
        core.releaseBackend(failed: false)
        core.token.take()?.complete(status: nil)
        pendingBody.removeAll()
    }

    /// The current request's access-log line, once, as the exchange ends.
    private func finishLog(status: Int) {
        guard var record = logRecord.take() else { return }
        record.bytesIn = max(record.bytesIn, requestBodyBytes)
        record.bytesOut = max(record.bytesOut, responseBodyBytes)
        loop.accessLog?.finish(record, status: status)
    }

    private func resetRequestState() {
        core.reset()
        upstreamHeadBytes = nil
        pendingBody.removeAll(keepingCapacity: true)
        chunkScanner = nil
        requestHasBody = false
        requestBodyForwarded = false
        requestBodyBytes = 0
        responseBodyBytes = 0
        responseStatus = nil
        responseReader = nil
        rechunkResponse = false
        upstreamReusable = true
        upgradeProtocol = nil
        switchingHead = nil
        switchPending = false
    }

    // MARK: Connection management (called by LoopContext on drains and shutdown)

    func handOver() {
        guard machine.isIdle, machine.requestsServed > 0 else { return }
        closeNow()
    }

    var needsOwnConnection: Bool { upgradeProtocol != nil }

    func closeIfIdle(deployment: String?) {
        guard machine.isIdle else { return }
        if let deployment, lastDeployment != deployment { return }
        closeNow()
    }

    func closeNow() {
        guard let context else { return }
        machine.closed()
        context.close(promise: nil)
    }
}

import Logging
import NIOCore
import NIOHTTP1

/// The client side of one HTTP/2 connection (h2 over TLS, or h2c with prior knowledge): feeds
/// the bytes to an `H2Session`, turns its events into stream exchanges, and writes what the
/// session produces.
///
/// Drain (RFC 9113 6.8): when the gateway or a deployment this connection sent requests to starts
/// draining, a GOAWAY with the largest stream id tells the client to stop opening streams, a PING
/// measures one round trip, and the PING's ACK (or a second, whichever first) brings the GOAWAY
/// with the real last stream id. Streams in flight finish; the connection closes when none is
/// left. `closeNow` resets what remains.
///
/// Abuse: rapid reset and PING/SETTINGS floods are caught by the session's token buckets,
/// CONTINUATION floods by nghttp2's continuation cap, and a client that keeps its window at zero
/// while responses wait is cut off after `stallTimeout`. Each closes the
/// connection with GOAWAY ENHANCE_YOUR_CALM; other connections are not affected.
final class H2ConnectionHandler: ChannelInboundHandler, ClientConnection, TimerWheelEntry {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    struct Options {
        var session = H2Session.Settings()
        /// How long responses may wait on a client's zero window before the connection is cut.
        var stallTimeout: Duration = .seconds(10)
        /// A connection without streams for this long is closed (GOAWAY first).
        var idleTimeout: Duration = .seconds(60)
    }

    private enum Drain: Equatable {
        case open
        /// GOAWAY(2^31-1) and a PING sent.
        case noticed(since: NIODeadline)
        /// GOAWAY with the last stream id sent; no new streams.
        case goingAway
    }

    private static let drainPing: UInt64 = 0x6761_7465_7761_7921  // "gateway!"
    private static let enhanceYourCalm: UInt32 = 0xB
    private static let cancel: UInt32 = 0x8
    private static let refusedStream: UInt32 = 0x7
    private static let protocolError: UInt32 = 0x1
    /// How long a closing connection waits for its last bytes to be written.
    private static let closeGrace: TimeAmount = .seconds(2)

    private let loop: LoopContext
    private let scheme: String
    private let options: Options
    private var session: H2Session!
    private var context: ChannelHandlerContext!
    private var streams: [Int32: H2StreamExchange] = [:]
    private var clientAddress = ""
    private var clientPort = 0
    private var drain = Drain.open
    /// A handover began before this connection carried any stream (see `handOver()`).
    private var drainAfterFirstStream = false
    private var peerWentAway = false
    private var closing = false
    private var flushScheduled = false
    private var writePending = false
    /// The connection's place on its loop's timer wheel: once a second while it has streams or
    /// a drain under way (the checks of `timerFired`), else at its idle deadline.
    var timerSlot = TimerWheelSlot()
    /// The wheel holds the connection for its once-a-second checks (not just its idle deadline).
    private var ticking = false
    private var lastActivity = NIODeadline.now()
    /// Streams that wrote upload bytes to their backend since the last flush.
    private var streamsToFlush: [H2StreamExchange] = []
    /// Streams opened and reset in the same batch of events (kept with its capacity).
    private var closedNow = Set<Int32>()
    /// The last stream id of the final GOAWAY: streams above it are refused, never started.
    private var goAwayLastStreamID: Int32?
    /// Since when the socket has not taken our bytes while responses wait.
    private var unwritableSince: NIODeadline?
    /// Deployments this connection's streams went to: a drain of one of them sends GOAWAY.
    private var deployments: Set<String> = []
    /// The deployment `deployments` took last.
    private var lastDeployment: String?
    private(set) var allocator = ByteBufferAllocator()

    init(loop: LoopContext, scheme: String, options: Options) {
        self.loop = loop
        self.scheme = scheme
        self.options = options
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        allocator = context.channel.allocator
        clientAddress = context.channel.remoteAddress?.ipAddress ?? ""
        clientPort = context.channel.remoteAddress?.port ?? 0
        do {
            session = try H2Session(settings: options.session, allocator: allocator)
        } catch {
            loop.logger.error("cannot create HTTP/2 session", metadata: ["error": "\(error)"])
            context.close(promise: nil)
            return
        }
        loop.register(self)
        if loop.handingOver { drainAfterFirstStream = true }
        loop.traffic.h2Connections.add(1, ordering: .relaxed)
        scheduleTimer()
        // The server's SETTINGS go first.
        flushOutput()
    }

    func channelActive(context: ChannelHandlerContext) {
        flushOutput()
        context.fireChannelActive()
    }

    /// One deadline per connection on the loop's wheel: a tick a second (drain PING timeout,
    /// stalls, backend deadlines) while there is something to watch, else the idle deadline.
    private func scheduleTimer() {
        guard !closing else { return }
        if streams.isEmpty, drain == .open, context.channel.isWritable {
            ticking = false
            loop.timers.schedule(self, deadline: lastActivity + TimeAmount(options.idleTimeout))
        } else {
            ticking = true
            loop.timers.schedule(self, in: .seconds(1))
        }
    }

    /// A stream opened (or a drain began): the once-a-second checks start if they were off.
    private func startTicking() {
        guard !ticking, !closing, context != nil else { return }
        ticking = true
        loop.timers.schedule(self, in: .seconds(1))
    }

    func timerFired(now: UInt64) {
        guard !closing, context != nil else { return }
        onTick()
        scheduleTimer()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        tearDown()
        // The context holds this handler: kept, the two (and the nghttp2 session, some 28 KB)
        // outlived the connection.
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        tearDown()
        context.fireChannelInactive()
    }

    private func tearDown() {
        // The wheel holds the connection while it is scheduled.
        if timerSlot.isScheduled { loop.timers.cancel(self) }
        ticking = false
        closing = true
        streamsToFlush.removeAll()
        abortStreams()
        loop.unregister(self)
    }

    /// Ends every exchange at once: tokens complete as aborted, backend connections close.
    private func abortStreams() {
        let open = streams
        streams.removeAll()
        for stream in open.values { stream.closed(errorCode: Self.cancel) }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        loop.logger.debug("HTTP/2 connection error", metadata: ["client": "\(clientAddress)", "error": "\(error)"])
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing, let session else { return }
        lastActivity = .now()
        do {
            try session.receive(unwrapInboundIn(data))
        } catch {
            processEvents()
            fatal(error)
            return
        }
        processEvents()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushUpstreams()
        flushOutput()
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            unwritableSince = nil
            flushOutput()
            for stream in streams.values { stream.resumeIfWritable() }
        }
        context.fireChannelWritabilityChanged()
    }

    // MARK: Session events

    private func processEvents() {
        while session.hasEvents {
            var events = session.takeEvents()
            // Streams opened and reset in the same read (rapid reset) never reach a backend.
            closedNow.removeAll(keepingCapacity: true)
            // By index: `for event in events` copies each event (a retain and a release of every
            // buffer and string in a request head).
            for index in events.indices {
                if case .streamClosed(let id, _) = events[index] { closedNow.insert(id) }
            }
            for index in events.indices { handle(events[index]) }
            session.recycle(&events)
        }
    }

    /// Flushes the backend connections that streams wrote upload bytes to.
    private func flushUpstreams() {
        guard !streamsToFlush.isEmpty else { return }
        var index = 0
        // A flush may end a stream, which never adds one here; index, not iterator, all the same.
        while index < streamsToFlush.count {
            streamsToFlush[index].flushUpstream()
            index += 1
        }
        streamsToFlush.removeAll(keepingCapacity: true)
    }

    private func handle(_ event: H2Session.Event) {
        switch event {
        case .request(let streamID, let head, let endStream):
            loop.traffic.h2Requests.add(1, ordering: .relaxed)
            if closedNow.contains(streamID) || closing { return }
            if let last = goAwayLastStreamID, streamID > last {
                // Opened before the client saw the final GOAWAY: refused, so it may retry elsewhere.
                session.resetStream(streamID: streamID, errorCode: Self.refusedStream)
                return
            }
            let stream = H2StreamExchange(streamID: streamID, connection: self, loop: loop)
            streams[streamID] = stream
            startTicking()
            if drainAfterFirstStream {
                // Streams the client sent in the same flight arrive before the PING's answer and
                // are served; the final GOAWAY names the last of them.
                drainAfterFirstStream = false
                startDrain()
            }
            stream.start(head, endStream: endStream, clientAddress: clientAddress, clientPort: clientPort, scheme: scheme)
            // Most connections send every stream to one deployment: no hashing of its name again.
            if let name = stream.deploymentName, name != lastDeployment {
                deployments.insert(name)
                lastDeployment = name
            }
        case .data(let streamID, let buffer, _):
            if let stream = streams[streamID] {
                stream.receiveBody(buffer)
            } else {
                session.consume(streamID: streamID, count: buffer.readableBytes)
            }
        case .end(let streamID, let trailers):
            streams[streamID]?.receiveEnd(trailers: trailers)
        case .streamClosed(let streamID, let errorCode):
            if errorCode != 0 { loop.traffic.h2StreamsReset.add(1, ordering: .relaxed) }
            streams.removeValue(forKey: streamID)?.closed(errorCode: errorCode)
            if streams.isEmpty { lastActivity = .now() }
        case .sendQueueShrank(let streamID):
            streams[streamID]?.sendQueueShrank()
        case .responseSent(let streamID):
            streams[streamID]?.responseSent()
        case .pingAck(let opaque):
            if opaque == Self.drainPing, case .noticed = drain { sendFinalGoAway() }
        case .goAwayReceived:
            peerWentAway = true
        case .flood(let kind):
            abuse(kind)
        }
    }

    private func fatal(_ error: H2Session.Failure) {
        if error.isBadPreface {
            // A connection error like any other (RFC 9113 3.4): GOAWAY PROTOCOL_ERROR, then the
            // close. Not counted as abuse: it is most often a client that speaks no HTTP/2.
            loop.logger.debug("not an HTTP/2 client", metadata: ["client": "\(clientAddress)"])
            session.terminate(errorCode: Self.protocolError)
            closeAfterOutput()
            return
        }
        abuse(error.isFlood ? "flood: \(error)" : "protocol error: \(error)", errorCode: error.errorCode)
    }

    /// Closes a misbehaving connection: GOAWAY with `errorCode`, its streams reset, nothing more read.
    private func abuse(_ reason: String, errorCode: UInt32 = H2ConnectionHandler.enhanceYourCalm) {
        guard !closing else { return }
        loop.logger.warning("closing HTTP/2 connection", metadata: ["client": "\(clientAddress)", "reason": "\(reason)"])
        loop.traffic.h2AbusiveConnections.add(1, ordering: .relaxed)
        session.terminate(errorCode: errorCode)
        closeAfterOutput()
        // Its requests stop counting now, not when the last bytes are out.
        abortStreams()
    }

    // MARK: Output

    var isWritable: Bool { context?.channel.isWritable ?? false }

    func scheduleFlush() {
        guard !flushScheduled, let context else { return }
        flushScheduled = true
        context.eventLoop.assumeIsolated().execute { [self] in
            flushScheduled = false
            flushOutput()
        }
    }

    /// Writes what the session has to send, acting on the events sending causes (streams that
    /// closed with their last frame, queues that shrank).
    private func flushOutput() {
        guard let context, let session, context.channel.isActive else { return }
        var out = context.channel.allocator.buffer(capacity: 0)
        // Sending can close streams and free queue space; acting on that can submit more.
        while context.channel.isWritable || closing {
            // DATA payloads are copied once, into `out` (NO_COPY; nghttp2's own buffer made it
            // two). Writing large ones as slices (`produceOutput(into:writingLargeData:)`) is
            // not used yet: large echoed bodies came out wrong through this handler.
            let wrote = session.produceOutput(into: &out)
            let hadEvents = session.hasEvents
            processEvents()
            if !wrote && !hadEvents { break }
        }
        if out.readableBytes > 0 {
            context.writeAndFlush(wrapOutboundOut(out), promise: nil)
        }
        if closing {
            return
        }
        if session.isFinished || (drain == .goingAway || peerWentAway) && streams.isEmpty && !session.wantsWrite {
            closeAfterOutput()
        }
    }

    /// Closes once what is queued has been written, or after `closeGrace` if the client does
    /// not read it.
    private func closeAfterOutput() {
        guard let context else { return }
        var out = context.channel.allocator.buffer(capacity: 0)
        session.produceOutput(into: &out)
        closing = true
        let grace = context.eventLoop.assumeIsolated().scheduleTask(in: Self.closeGrace) {
            context.close(promise: nil)
        }
        context.writeAndFlush(wrapOutboundOut(out)).assumeIsolated().whenComplete { _ in
            grace.cancel()
            context.close(promise: nil)
        }
    }

    // MARK: Called by stream exchanges

    func submitResponse(streamID: Int32, status: Int, headers: HTTPHeaders, hasBody: Bool) -> Bool {
        let ok = session.submitResponse(streamID: streamID, status: status, headers: headers, hasBody: hasBody)
        scheduleFlush()
        return ok
    }

    func submitResponse(
        streamID: Int32, status: Int, hasBody: Bool, fields: (inout H2Session.FieldList) -> Void
    ) -> Bool {
        let ok = session.submitResponse(streamID: streamID, status: status, hasBody: hasBody, fields: fields)
        scheduleFlush()
        return ok
    }

    /// The stream wrote upload bytes to its backend: flushed at the end of this read.
    func needsUpstreamFlush(_ stream: H2StreamExchange) {
        streamsToFlush.append(stream)
    }

    func sendBody(streamID: Int32, _ buffer: ByteBuffer) {
        session.sendBody(streamID: streamID, buffer)
    }

    func finishBody(streamID: Int32, trailers: HTTPHeaders?) {
        session.finishBody(streamID: streamID, trailers: trailers)
        scheduleFlush()
    }

    func queuedBytes(streamID: Int32) -> Int { session.queuedBytes(streamID: streamID) }

    func consume(streamID: Int32, count: Int) {
        guard !closing else { return }
        session.consume(streamID: streamID, count: count)
        scheduleFlush()
    }

    func resetStream(_ streamID: Int32, errorCode: UInt32) {
        session.resetStream(streamID: streamID, errorCode: errorCode)
        scheduleFlush()
    }

    // MARK: Drain (ClientConnection)

    func closeIfIdle(deployment: String?) {
        if let deployment, !deployments.contains(deployment) { return }
        startDrain()
        if streams.isEmpty, drain == .goingAway { flushOutput() }
    }

    func handOver() {
        // A connection that carried no stream yet gets its GOAWAYs once its first streams are in.
        guard session.lastProcessedStreamID > 0 || closing else {
            drainAfterFirstStream = true
            return
        }
        startDrain()
        if streams.isEmpty, drain == .goingAway { flushOutput() }
    }

    func closeTunnel(deployment: String?) {}
    func closeTunnel(backend: HostPort) -> Bool { false }

    /// The drain timed out (or the gateway is stopping): reset what is left and close.
    func closeNow() {
        guard context != nil, !closing else { return }
        for id in streams.keys { session.resetStream(streamID: id, errorCode: Self.cancel) }
        if drain != .goingAway {
            goAwayLastStreamID = session.lastProcessedStreamID
            session.submitGoAway(errorCode: 0)
            drain = .goingAway
        }
        closeAfterOutput()
    }

    private func startDrain() {
        guard case .open = drain, !closing else { return }
        session.submitShutdownNotice()
        session.submitPing(Self.drainPing)
        drain = .noticed(since: .now())
        startTicking()
        loop.traffic.h2GoAways.add(1, ordering: .relaxed)
        flushOutput()
    }

    private func sendFinalGoAway() {
        drain = .goingAway
        goAwayLastStreamID = session.lastProcessedStreamID
        session.submitGoAway(errorCode: 0)
        scheduleFlush()
    }

    // MARK: Timer

    private func onTick() {
        guard !closing else { return }
        let now = NIODeadline.now()
        if case .noticed(let since) = drain, now - since >= .seconds(1) {
            sendFinalGoAway()
        }
        if streams.isEmpty, drain == .open, now - lastActivity >= TimeAmount(options.idleTimeout) {
            startDrain()
            sendFinalGoAway()
            return
        }
        // A client that stops reading its socket holds its streams (and their admissions) as
        // surely as one that keeps its window at zero.
        if !context.channel.isWritable, !streams.isEmpty {
            let since = unwritableSince ?? now
            unwritableSince = since
            if now - since >= TimeAmount(options.stallTimeout) {
                abuse("not reading its socket for \(options.stallTimeout) while responses wait")
                return
            }
        }
        for stream in streams.values {
            stream.checkRequestBody(now: now)
            stream.checkResponseDeadline(now: now)
            let progressed = stream.progressed
            stream.progressed = false
            if !progressed, session.isBlockedByPeerWindow(streamID: stream.streamID) {
                let since = stream.stalledSince ?? now
                stream.stalledSince = since
                if now - since >= TimeAmount(options.stallTimeout) {
                    abuse("responses stalled on a zero flow-control window for \(options.stallTimeout)")
                    return
                }
            } else {
                stream.stalledSince = nil
            }
        }
    }
}

import NIOCore

/// What a connection's handler does when a request stops moving; called on the connection's loop.
protocol ConnectionTimeoutDelegate: AnyObject {
    /// The request body made no progress for `requestBody` while the gateway was reading.
    func requestBodyTimedOut()
    /// The upgraded tunnel carried no byte either way for `tunnelIdle`.
    func tunnelIdleTimedOut()
}

/// Guards an admin connection's quiet periods, below the HTTP decoder where raw bytes are seen.
/// (The proxy's HTTP/1.1 connections have no decoder any more: `ProxyHandler` keeps the same
/// limits as one deadline on its loop's timer wheel, and reads its `Limits` from here.)
///
/// One limit at a time, by state:
/// - `idle` between requests on a keep-alive connection: the connection is closed;
/// - `readingHead`, from the first byte of a request until its head is decoded: a slowloris
///   client gets 408 and the connection is closed;
/// - `readingBody`, while a request body is still coming: a body that makes no progress for
///   `requestBody` while the gateway is willing to read is the delegate's to end (408). Time in
///   which the gateway itself holds reads (a backend that takes the body slowly, a connect in
///   progress) never counts against the client: the clock runs from a read request to the next
///   byte;
/// - `awaitingResponse`: none here (the proxy's backend-response timer runs);
/// - `tunnel`: no byte either way for `tunnelIdle` and the delegate closes the tunnel.
///
/// The admin listener says "head received" only once the whole (small, aggregated) request is
/// in, so its limit covers the body as well.
///
/// One timer per connection that is never cancelled on the request path: state changes only move
/// a deadline, and the timer, when it fires early, re-arms itself for the rest. Scheduling and
/// cancelling two timers per request showed up in profiles; reading the clock costs far less.
final class ConnectionTimeoutHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private enum State {
        case idle
        case readingHead
        case readingBody
        case awaitingResponse
        case tunnel
    }

    struct Limits {
        var idle: TimeAmount
        var requestHeader: TimeAmount
        var requestBody: TimeAmount
        var tunnelIdle: TimeAmount
        /// An idle cleartext HTTP/1.1 proxy connection is parked after this (zero: never).
        var parkIdle: TimeAmount = .zero

        init(idle: TimeAmount, requestHeader: TimeAmount, requestBody: TimeAmount, tunnelIdle: TimeAmount) {
            self.idle = idle
            self.requestHeader = requestHeader
            self.requestBody = requestBody
            self.tunnelIdle = tunnelIdle
        }

        init(_ config: TimeoutsConfig) {
            idle = TimeAmount(config.idle)
            requestHeader = TimeAmount(config.requestHeader)
            requestBody = TimeAmount(config.requestBody)
            tunnelIdle = TimeAmount(config.tunnelIdle)
            parkIdle = TimeAmount(config.parkIdle)
        }
    }

    /// The proxy handler; cleared when the connection ends (it holds this handler too).
    var delegate: (any ConnectionTimeoutDelegate)?
    private let limits: Limits
    private var state = State.idle
    private var deadline = NIODeadline.distantFuture
    private var timer: Scheduled<Void>?
    private var scheduledAt = NIODeadline.distantFuture
    private var context: ChannelHandlerContext?

    init(limits: Limits) {
        self.limits = limits
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { moveDeadline(limits.idle) }
    }

    func channelActive(context: ChannelHandlerContext) {
        moveDeadline(limits.idle)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        delegate = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch state {
        case .idle:
            state = .readingHead
            moveDeadline(limits.requestHeader)
        case .readingBody:
            // Progress: the clock restarts at the next read request (`readRequested`).
            deadline = .distantFuture
        case .tunnel:
            deadline = .now() + limits.tunnelIdle
        case .readingHead, .awaitingResponse:
            break
        }
        context.fireChannelRead(data)
    }

    /// The HTTP layer decoded a request head; a body to come is timed while it is being read.
    func requestHeadReceived(bodyExpected: Bool) {
        deadline = .distantFuture
        state = bodyExpected ? .readingBody : .awaitingResponse
    }

    /// The proxy handler let a read through: from now the client is the one to move.
    func readRequested() {
        guard case .readingBody = state, deadline == .distantFuture else { return }
        moveDeadline(limits.requestBody)
    }

    /// The request body ended: no limit here until the response is done.
    func requestBodyEnded() {
        guard case .readingBody = state else { return }
        state = .awaitingResponse
        deadline = .distantFuture
    }

    /// The connection became a tunnel (after a 101): only idleness limits it now.
    func tunnelStarted() {
        state = .tunnel
        moveDeadline(limits.tunnelIdle)
    }

    /// Bytes moved through the tunnel (the backend's side; the client's are seen in `channelRead`).
    func tunnelActivity() {
        deadline = .now() + limits.tunnelIdle
    }

    /// The response of the current request was written and the connection stays open.
    func responseCompleted() {
        state = .idle
        moveDeadline(limits.idle)
    }

    /// Writes a whole response as raw bytes, below NIO's HTTP encoder, and closes: for an answer
    /// the encoder would reshape (it strips the framing of any response to CONNECT).
    func writeRawAndClose(_ response: String) {
        guard let context else { return }
        state = .awaitingResponse
        deadline = .distantFuture
        context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string: response))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    private func moveDeadline(_ amount: TimeAmount) {
        deadline = .now() + amount
        // A later deadline is found by the timer when it fires; an earlier one (the short header
        // limit after the long idle one) needs the timer moved.
        if timer == nil || deadline < scheduledAt {
            timer?.cancel()
            schedule(at: deadline)
        }
    }

    private func schedule(at when: NIODeadline) {
        guard let context else { return }
        scheduledAt = when
        // A strong capture: the timer is cancelled when the channel goes inactive, and a weak
        // reference would move this handler's reference count to a side table (slow retains).
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: when) { [self] in
            fire()
        }
    }

    private func fire() {
        timer = nil
        guard let context, context.channel.isActive else { return }
        if deadline == .distantFuture { return }  // re-armed by the next state change
        if deadline > .now() {
            schedule(at: deadline)
            return
        }
        switch state {
        case .idle:
            context.close(promise: nil)
        case .readingBody:
            deadline = .distantFuture
            delegate?.requestBodyTimedOut()
        case .tunnel:
            deadline = .distantFuture
            delegate?.tunnelIdleTimedOut()
        case .readingHead:
            // Below the HTTP encoder: the bytes go to the socket as they are.
            let response = "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
            let buffer = context.channel.allocator.buffer(string: response)
            context.writeAndFlush(NIOAny(buffer)).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        case .awaitingResponse:
            break
        }
    }
}

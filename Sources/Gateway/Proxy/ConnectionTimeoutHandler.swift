import NIOCore

/// Guards a client connection's quiet periods, below the HTTP decoder where raw bytes are seen.
///
/// Two limits, one at a time: `idle` between requests on a keep-alive connection (the connection
/// is closed), and `requestHeader` from the first byte of a request until its head is decoded (a
/// slowloris client gets 408 and the connection is closed). The proxy handler tells it when a
/// head was decoded and when a response was finished. The admin listener uses it too, and says
/// "head received" only once the whole (small, aggregated) request is in, so its limit covers
/// the body as well.
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
        case inRequest
    }

    private let idleTimeout: TimeAmount
    private let headerTimeout: TimeAmount
    private var state = State.idle
    private var deadline = NIODeadline.distantFuture
    private var timer: Scheduled<Void>?
    private var scheduledAt = NIODeadline.distantFuture
    private var context: ChannelHandlerContext?

    init(idleTimeout: TimeAmount, headerTimeout: TimeAmount) {
        self.idleTimeout = idleTimeout
        self.headerTimeout = headerTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { moveDeadline(idleTimeout) }
    }

    func channelActive(context: ChannelHandlerContext) {
        moveDeadline(idleTimeout)
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
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .idle = state {
            state = .readingHead
            moveDeadline(headerTimeout)
        }
        context.fireChannelRead(data)
    }

    /// The HTTP layer decoded a request head: no limit until the response is done.
    func requestHeadReceived() {
        state = .inRequest
        deadline = .distantFuture
    }

    /// The response of the current request was written and the connection stays open.
    func responseCompleted() {
        state = .idle
        moveDeadline(idleTimeout)
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
        if case .inRequest = state { return }  // re-armed by responseCompleted()
        if deadline > .now() {
            schedule(at: deadline)
            return
        }
        switch state {
        case .idle:
            context.close(promise: nil)
        case .readingHead:
            // Below the HTTP encoder: the bytes go to the socket as they are.
            let response = "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
            let buffer = context.channel.allocator.buffer(string: response)
            context.writeAndFlush(NIOAny(buffer)).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        case .inRequest:
            break
        }
    }
}

import NIOCore

/// Guards a client connection's quiet periods, below the HTTP decoder where raw bytes are seen.
///
/// Two timers, never both armed: `idle` between requests on a keep-alive connection (the
/// connection is closed), and `requestHeader` from the first byte of a request until its head is
/// decoded (a slowloris client gets 408 and the connection is closed). The proxy handler tells it
/// when a head was decoded and when a response was finished.
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
    private var timer: Scheduled<Void>?
    private var context: ChannelHandlerContext?

    init(idleTimeout: TimeAmount, headerTimeout: TimeAmount) {
        self.idleTimeout = idleTimeout
        self.headerTimeout = headerTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { arm(idleTimeout) }
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(idleTimeout)
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
            arm(headerTimeout)
        }
        context.fireChannelRead(data)
    }

    /// The HTTP layer decoded a request head: no timer until the response is done.
    func requestHeadReceived() {
        state = .inRequest
        timer?.cancel()
        timer = nil
    }

    /// The response of the current request was written and the connection stays open.
    func responseCompleted() {
        state = .idle
        arm(idleTimeout)
    }

    private func arm(_ amount: TimeAmount) {
        timer?.cancel()
        guard let context else { return }
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: amount) { [weak self] in
            self?.fire()
        }
    }

    private func fire() {
        guard let context else { return }
        timer = nil
        switch state {
        case .idle:
            context.close(promise: nil)
        case .readingHead:
            // Below the HTTP encoder: the bytes go to the socket as they are.
            let response = "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
            let buffer = context.channel.allocator.buffer(string: response)
            context.writeAndFlush(NIOAny(buffer)).assumeIsolated().whenComplete { [weak self] _ in
                self?.context?.close(promise: nil)
            }
        case .inRequest:
            break
        }
    }
}

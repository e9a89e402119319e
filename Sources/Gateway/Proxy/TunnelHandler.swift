import NIOCore

/// Relays raw bytes between a client and a backend after a protocol upgrade (101), in both
/// directions, with backpressure: reads from one side wait while the other cannot take more.
///
/// One handler on each channel; the two are peers on the same event loop and call each other
/// directly. When either side closes, the other is closed after its pending writes.
final class TunnelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    weak var peer: TunnelHandler?
    private(set) var context: ChannelHandlerContext?
    private var readPending = false
    private var closed = false
    /// Called once when this side's channel closes (to complete the request's token).
    var onClose: (() -> Void)?
    /// Called for every read on this side (the tunnel's idle clock).
    var onRead: (() -> Void)?
    /// Bytes read on this side (and passed to the other), for the access log.
    private(set) var bytesRead = 0

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        onRead?()
        bytesRead += unwrapInboundIn(data).readableBytes
        guard let peerContext = peer?.context else { return }
        peerContext.write(data, promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        peer?.context?.flush()
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        if let peerChannel = peer?.context?.channel, !peerChannel.isWritable {
            readPending = true
        } else {
            context.read()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { peer?.resumeReading() }
        context.fireChannelWritabilityChanged()
    }

    func resumeReading() {
        guard readPending, let context else { return }
        readPending = false
        context.read()
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish()
        peer?.closeAfterPendingWrites()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    /// Sends `bytes` (say, a WebSocket close frame) and then closes this side.
    func writeAndClose(_ bytes: [UInt8]?) {
        guard let context else { return }
        if let bytes {
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes)))
                .assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        } else {
            context.close(promise: nil)
        }
    }

    private func closeAfterPendingWrites() {
        guard let context, context.channel.isActive else { return }
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(capacity: 0)))
            .assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }

    private func finish() {
        guard !closed else { return }
        closed = true
        onClose?()
        onClose = nil
    }
}

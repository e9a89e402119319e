import NIOCore

/// What an upstream connection reports to the client-side handler that currently owns it.
///
/// Both channels live on the same event loop (the pool is per loop), so these are plain calls.
protocol UpstreamDelegate: AnyObject {
    /// Bytes of the backend's response as they came off the socket; the delegate's
    /// `BackendResponseReader` frames them.
    func upstreamReceived(_ bytes: ByteBuffer)
    func upstreamWritabilityChanged(isWritable: Bool)
    /// The end of one read batch from the backend: the moment to flush to the client.
    func upstreamReadComplete()
    func upstreamClosed(error: Error?)
    /// Whether the client side can take more response bytes; reads from the backend wait otherwise.
    var clientIsWritable: Bool { get }
}

/// One keep-alive HTTP/1.1 connection to a backend, with the handler at the end of its pipeline.
///
/// The pipeline has no HTTP codec: the request goes out as bytes the exchange wrote itself and the
/// response comes in as bytes the exchange's `BackendResponseReader` frames. So nothing is decoded
/// into strings, and after a 101 the same channel carries the tunnel's bytes as they are.
///
/// Owned by exactly one event loop. Between exchanges it sits in the loop's pool with no delegate.
final class UpstreamConnection {
    let channel: Channel
    /// The pool's idle connections of this backend, where this one returns between exchanges.
    unowned let stack: UpstreamPool.IdleStack
    let handler: UpstreamHandler
    var backend: HostPort { stack.address }
    /// Requests this connection has carried; the first one never retries on a fresh connection.
    var exchanges = 0

    init(channel: Channel, stack: UpstreamPool.IdleStack, handler: UpstreamHandler) {
        self.channel = channel
        self.stack = stack
        self.handler = handler
    }

    var isActive: Bool { channel.isActive }

    func close() {
        handler.delegate = nil
        channel.close(promise: nil)
    }
}

/// The only handler of an upstream pipeline: forwards the response bytes to the delegate and holds
/// reads while the client cannot take more bytes (the response direction's backpressure).
final class UpstreamHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// The client-side handler of the exchange in progress; nil while pooled. Strong, and
    /// cleared whenever an exchange ends (release to the pool, close): weak references put an
    /// object's reference count in a side table, which made every retain on the request path slow.
    var delegate: (any UpstreamDelegate)?
    /// Called when the connection closes without an exchange in progress, so the pool can drop it
    /// if it holds it.
    var onIdleClose: (() -> Void)?
    private var readPending = false
    private var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        if let delegate {
            delegate.upstreamReceived(bytes)
        } else {
            // Bytes on an idle pooled connection: the backend is confused; never reuse it.
            context.close(promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        delegate?.upstreamReadComplete()
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let delegate = self.delegate {
            self.delegate = nil
            delegate.upstreamClosed(error: nil)
        } else {
            onIdleClose?()
        }
        onIdleClose = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let delegate {
            self.delegate = nil
            delegate.upstreamClosed(error: error)
        }
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        delegate?.upstreamWritabilityChanged(isWritable: context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if let delegate, !delegate.clientIsWritable {
            readPending = true
        } else {
            context.read()
        }
    }

    /// The client drained its buffer: let the backend's bytes flow again.
    func resumeReadingIfNeeded() {
        guard readPending, let context else { return }
        readPending = false
        context.read()
    }
}

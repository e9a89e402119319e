import NIOCore

/// Builds the handlers of a client connection once its protocol is known: at accept for a
/// single-protocol listener, after the first bytes for `[http1, h2c]`, after the TLS handshake
/// (by ALPN) for TLS listeners.
enum ClientPipeline {
    /// HTTP/1.1: the proxy handler alone, which reads and writes bytes (no codec) and keeps its
    /// own deadlines on the loop's timer wheel. Appended at the end of the pipeline.
    static func addHTTP1(to channel: Channel, loop: LoopContext, scheme: String) throws {
        try channel.pipeline.syncOperations.addHandler(ProxyHandler(loop: loop, scheme: scheme == "https" ? "https" : "http"))
    }

    /// HTTP/2: one handler that owns the nghttp2 session.
    static func addHTTP2(to channel: Channel, loop: LoopContext, scheme: String) throws {
        var options = H2ConnectionHandler.Options()
        options.session = loop.http2.session
        options.session.maxHeaderListSize = UInt32(clamping: loop.limits.maxHeaderBytes)
        options.stallTimeout = loop.http2.stallTimeout
        options.idleTimeout = loop.timeouts.idle
        try channel.pipeline.syncOperations.addHandler(H2ConnectionHandler(loop: loop, scheme: scheme, options: options))
    }
}

/// On an `[http1, h2c]` listener: reads until the first bytes tell the HTTP/2 connection preface
/// ("PRI * HTTP/2.0...") from an HTTP/1.1 request line, sets up that protocol after itself, hands
/// it the bytes and leaves.
///
/// The HTTP/2 request line alone decides: no HTTP/1.1 request starts with it, and a client that
/// sends it meant HTTP/2, so a preface broken after it is HTTP/2's to answer (GOAWAY
/// PROTOCOL_ERROR, RFC 9113 3.4), not an HTTP/1.1 400.
final class PrefaceDetector: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    /// The start of the HTTP/2 connection preface: its request line.
    static let requestLine = Array("PRI * HTTP/2.0".utf8)

    private let loop: LoopContext
    private let scheme: String
    private var buffered: ByteBuffer?
    private var timer: Scheduled<Void>?

    init(loop: LoopContext, scheme: String) {
        self.loop = loop
        self.scheme = scheme
    }

    func handlerAdded(context: ChannelHandlerContext) {
        // A client that never says enough to tell is closed like one that never sends a head.
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(loop.timeouts.requestHeader)) {
            context.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if buffered == nil {
            buffered = incoming
        } else {
            buffered!.writeBuffer(&incoming)
        }
        let bytes = buffered!.readableBytesView
        let compared = min(bytes.count, Self.requestLine.count)
        let isPreface = bytes.prefix(compared).elementsEqual(Self.requestLine.prefix(compared))
        if isPreface, compared < Self.requestLine.count { return }  // not enough to tell yet
        do {
            if isPreface {
                try ClientPipeline.addHTTP2(to: context.channel, loop: loop, scheme: scheme)
            } else {
                try ClientPipeline.addHTTP1(to: context.channel, loop: loop, scheme: scheme)
            }
        } catch {
            context.close(promise: nil)
            return
        }
        let first = buffered!
        buffered = nil
        context.fireChannelRead(wrapInboundOut(first))
        context.fireChannelReadComplete()
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}

/// Behind the TLS handler: waits for the handshake, then sets up the protocol ALPN chose (h2,
/// or HTTP/1.1 when the client chose it or offered nothing the listener speaks) and leaves.
/// Decrypted bytes come only after the handshake event, so they reach the new handlers.
final class TLSProtocolSelector: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private let loop: LoopContext
    private let protocols: [ListenerProtocol]
    private var timer: Scheduled<Void>?

    init(loop: LoopContext, protocols: [ListenerProtocol]) {
        self.loop = loop
        self.protocols = protocols
    }

    func handlerAdded(context: ChannelHandlerContext) {
        // A handshake that never finishes is closed like a request head that never comes.
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(loop.timeouts.requestHeader)) {
            context.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let done = event as? TLSHandshakeCompleted else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        timer?.cancel()
        do {
            if done.alpn == "h2" {
                try ClientPipeline.addHTTP2(to: context.channel, loop: loop, scheme: "https")
            } else if protocols.contains(.http1) {
                try ClientPipeline.addHTTP1(to: context.channel, loop: loop, scheme: "https")
            } else {
                loop.logger.debug("TLS client did not choose h2 on an h2-only listener; closing")
                context.close(promise: nil)
                return
            }
        } catch {
            context.close(promise: nil)
            return
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // A failed handshake: the TLS handler counted it and sent its alert.
        loop.logger.debug("TLS connection failed", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }
}

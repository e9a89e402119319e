import NIOCore

/// Terminates TLS on one accepted connection: ciphertext below, plaintext above.
///
/// Everything happens on the channel's event loop, driven by pipeline events; OpenSSL never
/// touches the socket (see `TLSConnection`). The handler keeps no locks: the only shared state,
/// `TLSCounters`, is atomic.
///
/// - The handshake starts when the channel is active. When it completes, `TLSHandshakeCompleted`
///   is fired through `userInboundEventTriggered` before any plaintext `channelRead`, so the next
///   handler can set the pipeline up for the negotiated protocol right there.
/// - Reads pass `read` through: backpressure belongs to the handlers above, which see plaintext.
/// - Writes are buffered until `flush`, and until the handshake has completed; each write's promise
///   completes when the ciphertext carrying it has been written. Zero-length writes succeed.
/// - `close(mode: .all)` sends close_notify, waits (at most `closeTimeout`) for it to be written,
///   then closes the channel. It does not wait for the peer's close_notify: a peer that never
///   answers must not hold the connection open.
/// - `close(mode: .output)` fails with `ChannelError.operationUnsupported`: half-closing TLS
///   (close_notify, then TCP shutdown of the write side, while reading on) is not something the
///   gateway needs, and pretending to do it with a full close would surprise the caller.
/// - When the peer's TCP connection ends after the handshake without close_notify, the handler
///   fires `TLSError.uncleanShutdown` through `errorCaught` before `channelInactive`: the data may
///   have been cut short. After the peer's close_notify it answers with its own and closes.
/// - Any OpenSSL failure (a failed handshake included) sends the alert OpenSSL produced, fires a
///   `TLSError` through `errorCaught`, and closes the channel.
final class TLSServerHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private struct BufferedWrite {
        var data: ByteBuffer
        var promise: EventLoopPromise<Void>?
    }

    private let tls: TLSServerContext
    private let counters: TLSCounters
    private let closeTimeout: TimeAmount
    /// Created in `handlerAdded`, released in `handlerRemoved` (which frees the `SSL`).
    private var connection: TLSConnection?
    private var machine = TLSServerStateMachine()
    private var bufferedWrites: [BufferedWrite] = []
    /// The array `encryptBufferedWrites` took its writes in last time, kept with its capacity.
    private var spareWrites: [BufferedWrite] = []
    /// Completed when the channel has closed after we started closing it; later `close` calls
    /// join it.
    private var closeCompletion: EventLoopPromise<Void>?
    private var closeTimer: Scheduled<Void>?
    private var closeIssued = false

    /// The ALPN protocol negotiated, once the handshake has completed.
    private(set) var negotiatedALPN: String?
    /// The server name the client asked for (SNI), once the handshake has completed.
    private(set) var serverName: String?

    /// - Parameter closeTimeout: how long `close` waits for our close_notify (or alert) to be
    ///   written before closing the channel regardless.
    init(context: TLSServerContext, counters: TLSCounters, closeTimeout: TimeAmount = .seconds(5)) {
        self.tls = context
        self.counters = counters
        self.closeTimeout = closeTimeout
    }

    // MARK: Lifecycle

    func handlerAdded(context: ChannelHandlerContext) {
        do {
            self.connection = try TLSConnection(context: self.tls)
        } catch {
            // Only an allocation failure gets here; the connection cannot be served.
            self.counters.recordHandshakeFailed()
            self.fail(context: context, error: error)
            return
        }
        if context.channel.isActive {
            self.startHandshake(context: context)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.machine.handlerRemoved()
        self.failBufferedWrites(TLSError.handlerRemoved)
        if !self.closeIssued, self.closeCompletion != nil {
            // Removed while our last bytes were on their way: close now, while the context is
            // still ours to use, rather than from a timer after it has left the pipeline.
            self.finishClose(context: context)
        }
        self.closeTimer?.cancel()
        self.closeTimer = nil
        self.connection = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        context.fireChannelActive()
        self.startHandshake(context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        let receivedCloseNotify = self.connection?.receivedCloseNotify ?? false
        switch self.machine.channelInactive(receivedCloseNotify: receivedCloseNotify) {
        case .none, .clean:
            break
        case .handshakeAbandoned(let counted):
            if counted {
                self.counters.recordHandshakeFailed()
                context.fireErrorCaught(TLSError.eofDuringHandshake)
            }
        case .unclean:
            self.counters.recordUncleanShutdown()
            context.fireErrorCaught(TLSError.uncleanShutdown)
        }
        self.failBufferedWrites(ChannelError.ioOnClosedChannel)
        self.closeTimer?.cancel()
        self.closeTimer = nil
        if !self.closeIssued, let completion = self.closeCompletion {
            // We were waiting for our last bytes to be written when the peer went away: the
            // channel is closed, which is what the close was for.
            self.closeIssued = true
            completion.succeed()
        }
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // With half-closure enabled the end of TCP input arrives as an event instead of
        // channelInactive. It is consumed here: above TLS, the end of input is close_notify, and
        // either way the connection is closed now.
        guard let channelEvent = event as? ChannelEvent, channelEvent == .inputClosed else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        let receivedCloseNotify = self.connection?.receivedCloseNotify ?? false
        switch self.machine.inputClosed(receivedCloseNotify: receivedCloseNotify) {
        case .none:
            break
        case .handshakeAbandoned(let counted):
            if counted { self.counters.recordHandshakeFailed() }
            self.endConnection(
                context: context,
                sending: nil,
                reporting: counted ? TLSError.eofDuringHandshake : nil,
                failingWritesWith: ChannelError.ioOnClosedChannel,
                promise: nil
            )
        case .unclean:
            self.counters.recordUncleanShutdown()
            self.sendCloseNotifyAndClose(context: context, reporting: TLSError.uncleanShutdown, promise: nil)
        case .clean:
            self.sendCloseNotifyAndClose(context: context, promise: nil)
        }
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let ciphertext = self.unwrapInboundIn(data)
        let action = self.machine.ciphertextReceived()
        guard action != .discard, let connection = self.connection else { return }
        do {
            try connection.receive(ciphertext)
        } catch {
            self.fail(context: context, error: error)
            return
        }
        if action == .handshake {
            self.advanceHandshake(context: context, connection: connection)
        }
        if self.machine.state == .open {
            self.decrypt(context: context, connection: connection)
        }
        // Whatever OpenSSL answered on its own: the server's handshake flight, session tickets,
        // key updates.
        self.flushCiphertext(context: context)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.fireChannelReadComplete()
    }

    private func startHandshake(context: ChannelHandlerContext) {
        guard self.machine.channelActive(), let connection = self.connection else { return }
        // A server speaks second: this only lets OpenSSL wait for the ClientHello.
        self.advanceHandshake(context: context, connection: connection)
    }

    private func advanceHandshake(context: ChannelHandlerContext, connection: TLSConnection) {
        switch connection.handshake() {
        case .needsInput:
            return
        case .failed(let error):
            self.counters.recordHandshakeFailed()
            self.fail(context: context, error: error)
        case .completed:
            let encryptWaitingWrites = self.machine.handshakeCompleted()
            let event = TLSHandshakeCompleted(
                alpn: connection.negotiatedALPN,
                serverName: connection.serverName,
                version: connection.protocolVersion,
                cipher: connection.cipherName
            )
            self.negotiatedALPN = event.alpn
            self.serverName = event.serverName
            self.counters.recordHandshakeCompleted(alpn: event.alpn)
            // The end of our handshake (TLS 1.3 session tickets) goes out before any data.
            self.flushCiphertext(context: context)
            // Before any plaintext is fired: the next handler may rebuild the pipeline here.
            context.fireUserInboundEventTriggered(event)
            if encryptWaitingWrites, self.machine.state == .open {
                self.encryptBufferedWrites(context: context)
            }
        }
    }

    /// Fires every record's plaintext that the read BIO holds.
    private func decrypt(context: ChannelHandlerContext, connection: TLSConnection) {
        // Re-checked each time round: a handler above may close the channel in channelRead.
        while self.machine.state == .open {
            switch connection.read(allocator: context.channel.allocator) {
            case .data(let plaintext):
                context.fireChannelRead(self.wrapInboundOut(plaintext))
            case .needsInput:
                return
            case .closeNotify:
                guard self.machine.closeNotifyReceived() else { return }
                self.counters.recordCleanShutdown()
                self.sendCloseNotifyAndClose(context: context, promise: nil)
                return
            case .failed(let error):
                self.fail(context: context, error: error)
                return
            }
        }
    }

    // MARK: Outbound

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch self.machine.writeRequested() {
        case .buffer:
            self.bufferedWrites.append(BufferedWrite(data: self.unwrapOutboundIn(data), promise: promise))
        case .fail:
            promise?.fail(ChannelError.ioOnClosedChannel)
        }
    }

    func flush(context: ChannelHandlerContext) {
        switch self.machine.flushRequested() {
        case .encrypt:
            self.encryptBufferedWrites(context: context)
        case .wait:
            break
        case .failWrites:
            self.failBufferedWrites(ChannelError.ioOnClosedChannel)
        }
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        switch self.machine.closeRequested(mode: mode) {
        case .forward:
            context.close(mode: mode, promise: promise)
        case .unsupported:
            promise?.fail(ChannelError.operationUnsupported)
        case .joinClose:
            if let completion = self.closeCompletion {
                completion.futureResult.cascade(to: promise)
            } else {
                context.close(mode: mode, promise: promise)
            }
        case .close:
            self.endConnection(
                context: context,
                sending: nil,
                reporting: nil,
                failingWritesWith: ChannelError.ioOnClosedChannel,
                promise: promise
            )
        case .sendCloseNotifyAndClose:
            self.sendCloseNotifyAndClose(context: context, promise: promise)
        }
    }

    /// Encrypts every buffered write into one ciphertext write; each write's promise completes
    /// with it.
    private func encryptBufferedWrites(context: ChannelHandlerContext) {
        guard !self.bufferedWrites.isEmpty, let connection = self.connection else { return }
        // Swapped with the spare array, not copied: `removeAll(keepingCapacity:)` on an array
        // still shared with a copy allocates new storage, once per flush.
        var writes: [BufferedWrite] = []
        swap(&writes, &self.spareWrites)
        swap(&writes, &self.bufferedWrites)
        defer {
            writes.removeAll(keepingCapacity: true)
            self.spareWrites = writes
        }

        // Most writes carry no promise (HTTP/2 frames): no array is made for them.
        var promises: [EventLoopPromise<Void>] = []
        // Failed only once the state machine knows: a promise's callback may call back in.
        var unwritten: [EventLoopPromise<Void>] = []
        var failure: TLSError?
        for write in writes {
            if failure == nil {
                do {
                    try connection.write(write.data)
                } catch {
                    failure = error
                }
            }
            if let promise = write.promise {
                if failure == nil {
                    promises.append(promise)
                } else {
                    unwritten.append(promise)
                }
            }
        }

        let ciphertext = connection.takeCiphertext(allocator: context.channel.allocator)
        let written: EventLoopPromise<Void>?
        switch promises.count {
        case 0:
            written = nil
        case 1:
            written = promises[0]
        default:
            let combined = context.eventLoop.makePromise(of: Void.self)
            let waiting = promises
            combined.futureResult.whenComplete { result in
                for promise in waiting { promise.completeWith(result) }
            }
            written = combined
        }

        if let failure {
            // What was encrypted before the failure goes out with OpenSSL's alert, before the close.
            self.fail(context: context, error: failure, after: ciphertext, completing: written)
            for promise in unwritten { promise.fail(failure) }
        } else if let ciphertext {
            context.writeAndFlush(self.wrapOutboundOut(ciphertext), promise: written)
        } else {
            // Only zero-length writes: nothing to send, nothing that can fail.
            written?.succeed()
        }
    }

    private func failBufferedWrites(_ error: any Error) {
        guard !self.bufferedWrites.isEmpty else { return }
        let writes = self.bufferedWrites
        self.bufferedWrites.removeAll()
        for write in writes {
            write.promise?.fail(error)
        }
    }

    private func flushCiphertext(context: ChannelHandlerContext) {
        guard let ciphertext = self.connection?.takeCiphertext(allocator: context.channel.allocator) else { return }
        context.writeAndFlush(self.wrapOutboundOut(ciphertext), promise: nil)
    }

    // MARK: Ending the connection

    /// Sends whatever alert OpenSSL produced, reports `error`, and closes.
    ///
    /// - Parameters:
    ///   - earlier: ciphertext taken from OpenSSL but not written yet, sent before the alert;
    ///     `written` completes when it has been.
    private func fail(
        context: ChannelHandlerContext,
        error: any Error,
        after earlier: ByteBuffer? = nil,
        completing written: EventLoopPromise<Void>? = nil
    ) {
        guard self.machine.failed() else {
            written?.fail(error)
            return
        }
        var outgoing = earlier
        if var alert = self.connection?.takeCiphertext(allocator: context.channel.allocator) {
            if outgoing == nil {
                outgoing = alert
            } else {
                outgoing?.writeBuffer(&alert)
            }
        }
        if outgoing == nil {
            written?.succeed()
        }
        self.endConnection(
            context: context,
            sending: outgoing,
            reporting: error,
            failingWritesWith: error,
            completing: written,
            promise: nil
        )
    }

    /// Queues close_notify (the state machine has checked that the handshake completed), sends it,
    /// then closes.
    private func sendCloseNotifyAndClose(
        context: ChannelHandlerContext,
        reporting error: (any Error)? = nil,
        promise: EventLoopPromise<Void>?
    ) {
        self.connection?.shutdown()
        let closeNotify = self.connection?.takeCiphertext(allocator: context.channel.allocator)
        self.endConnection(
            context: context,
            sending: closeNotify,
            reporting: error,
            failingWritesWith: ChannelError.ioOnClosedChannel,
            promise: promise
        )
    }

    /// Every way this handler ends a connection goes through here, once the state machine is in
    /// `.closing`. `written`, when given, completes with the write of `ciphertext`.
    ///
    /// The order matters, because each step can call back into this handler: the close promise is
    /// set up first, so that a `close` from a write promise's callback or from an `errorCaught`
    /// joins it instead of closing before our last bytes are written; the error is fired before
    /// the close, so that handlers above see it before `channelInactive`. The channel closes once
    /// `ciphertext` is written, or after `closeTimeout` when the peer does not read it (a full
    /// receive window must not keep the connection open).
    private func endConnection(
        context: ChannelHandlerContext,
        sending ciphertext: ByteBuffer?,
        reporting error: (any Error)?,
        failingWritesWith writeError: any Error,
        completing written: EventLoopPromise<Void>? = nil,
        promise: EventLoopPromise<Void>?
    ) {
        let completion = self.closeCompletion ?? context.eventLoop.makePromise(of: Void.self)
        self.closeCompletion = completion
        if let promise {
            completion.futureResult.cascade(to: promise)
        }

        // Writes that were never flushed fail on close, as on any NIO channel.
        self.failBufferedWrites(writeError)

        var lastWrite: EventLoopFuture<Void>?
        if let ciphertext {
            let promise = context.eventLoop.makePromise(of: Void.self)
            if let written {
                promise.futureResult.cascade(to: written)
            }
            context.writeAndFlush(self.wrapOutboundOut(ciphertext), promise: promise)
            lastWrite = promise.futureResult
        }
        if let error {
            context.fireErrorCaught(error)
        }
        guard let lastWrite else {
            self.finishClose(context: context)
            return
        }
        self.closeTimer = context.eventLoop.assumeIsolated().scheduleTask(in: self.closeTimeout) { [self] in
            self.finishClose(context: context)
        }
        lastWrite.assumeIsolated().whenComplete { [self] _ in
            self.finishClose(context: context)
        }
    }

    private func finishClose(context: ChannelHandlerContext) {
        guard !self.closeIssued else { return }
        self.closeIssued = true
        self.closeTimer?.cancel()
        self.closeTimer = nil
        context.close(mode: .all, promise: self.closeCompletion)
    }
}

@available(*, unavailable)
extension TLSServerHandler: Sendable {}

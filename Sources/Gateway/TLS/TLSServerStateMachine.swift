import NIOCore

/// The life of one TLS server connection as a pure state machine: events in, actions out.
/// `TLSServerHandler` carries the actions out with OpenSSL and the pipeline; tests drive this
/// directly.
///
/// It decides the questions whose answers depend on history: may data flow yet, must a write wait
/// for the handshake, does closing send close_notify (only after a completed handshake: OpenSSL
/// refuses `SSL_shutdown` before), and was the end of the connection clean.
struct TLSServerStateMachine {
    enum State: Equatable {
        /// In the pipeline, channel not active yet.
        case idle
        /// Waiting for (more of) the client's handshake. `receivedBytes`: whether the client has
        /// sent anything; a TCP connection that closes without a byte is no failed handshake.
        case handshaking(receivedBytes: Bool)
        /// Handshake done: plaintext flows both ways.
        case open
        /// We are ending the connection: our close_notify or alert is on its way, then the
        /// channel closes. Ciphertext still arriving is dropped.
        case closing
        /// The channel is inactive, or the handler left the pipeline.
        case closed
    }

    private(set) var state = State.idle
    /// A flush came during the handshake: encrypt the writes waiting once it completes.
    private var flushPending = false

    // MARK: Connection

    /// The channel became active (or the handler was added to an active one). Returns whether to
    /// start the handshake.
    mutating func channelActive() -> Bool {
        guard case .idle = self.state else { return false }
        self.state = .handshaking(receivedBytes: false)
        return true
    }

    enum InboundAction: Equatable {
        /// Feed the handshake.
        case handshake
        /// Decrypt and pass the plaintext on.
        case decrypt
        /// Drop it: we are closing, or closed.
        case discard
    }

    mutating func ciphertextReceived() -> InboundAction {
        switch self.state {
        case .idle, .handshaking:
            // Bytes before channelActive cannot happen on a socket; treat them as a handshake.
            self.state = .handshaking(receivedBytes: true)
            return .handshake
        case .open:
            return .decrypt
        case .closing, .closed:
            return .discard
        }
    }

    /// Returns whether a flush is waiting for the handshake, i.e. whether to encrypt the buffered
    /// writes now.
    mutating func handshakeCompleted() -> Bool {
        guard case .handshaking = self.state else { return false }
        self.state = .open
        defer { self.flushPending = false }
        return self.flushPending
    }

    /// The handshake failed, reading failed, or encrypting failed: whatever the SSL has left to say
    /// (an alert) is sent, then the channel closes. Returns false when already closing or closed.
    mutating func failed() -> Bool {
        switch self.state {
        case .idle, .handshaking, .open:
            self.state = .closing
            return true
        case .closing, .closed:
            return false
        }
    }

    /// The peer's close_notify was read: it will send nothing more, so we answer with ours and
    /// close. Returns false when already closing or closed.
    mutating func closeNotifyReceived() -> Bool {
        guard case .open = self.state else { return false }
        self.state = .closing
        return true
    }

    // MARK: Writes

    enum WriteAction: Equatable {
        case buffer
        case fail
    }

    func writeRequested() -> WriteAction {
        switch self.state {
        case .idle, .handshaking, .open: return .buffer
        case .closing, .closed: return .fail
        }
    }

    enum FlushAction: Equatable {
        /// Encrypt and send the buffered writes.
        case encrypt
        /// Keep them until the handshake completes.
        case wait
        /// Fail them: the connection is going away.
        case failWrites
    }

    mutating func flushRequested() -> FlushAction {
        switch self.state {
        case .idle, .handshaking:
            self.flushPending = true
            return .wait
        case .open:
            return .encrypt
        case .closing, .closed:
            return .failWrites
        }
    }

    // MARK: Closing

    enum CloseAction: Equatable {
        /// Close at once; there is no TLS session to end (the handshake has not completed).
        case close
        /// Send close_notify, then close.
        case sendCloseNotifyAndClose
        /// A close is already under way: complete this promise with it.
        case joinClose
        /// Not ours to handle: pass it on.
        case forward
        /// `close(mode: .output)`: not supported, see `TLSServerHandler`.
        case unsupported
    }

    mutating func closeRequested(mode: CloseMode) -> CloseAction {
        switch mode {
        case .input:
            return .forward
        case .output:
            return .unsupported
        case .all:
            break
        }
        switch self.state {
        case .idle, .handshaking:
            self.state = .closing
            return .close
        case .open:
            self.state = .closing
            return .sendCloseNotifyAndClose
        case .closing:
            return .joinClose
        case .closed:
            return .forward
        }
    }

    enum EndAction: Equatable {
        case none
        /// The client went away during the handshake; `counted`: it had sent something, so it
        /// counts (and is reported) as a failed handshake.
        case handshakeAbandoned(counted: Bool)
        /// The peer ended TCP without close_notify after the handshake: report it.
        case unclean
        /// The peer had sent close_notify: answer with ours and close (half-closed input only).
        case clean
    }

    /// TCP input ended (half-closure enabled): the channel stays active, so we close it.
    mutating func inputClosed(receivedCloseNotify: Bool) -> EndAction {
        switch self.state {
        case .idle:
            self.state = .closing
            return .handshakeAbandoned(counted: false)
        case .handshaking(let receivedBytes):
            self.state = .closing
            return .handshakeAbandoned(counted: receivedBytes)
        case .open:
            // Still open, so we close; after a clean end with close_notify, after an unclean
            // one without (the peer cannot read it anyway, but the TLS session still ends).
            self.state = .closing
            return receivedCloseNotify ? .clean : .unclean
        case .closing, .closed:
            return .none
        }
    }

    /// The channel went inactive.
    mutating func channelInactive(receivedCloseNotify: Bool) -> EndAction {
        defer { self.state = .closed }
        switch self.state {
        case .idle:
            return .none
        case .handshaking(let receivedBytes):
            return .handshakeAbandoned(counted: receivedBytes)
        case .open:
            return receivedCloseNotify ? .none : .unclean
        case .closing, .closed:
            return .none
        }
    }

    /// The handler left the pipeline: nothing more happens.
    mutating func handlerRemoved() {
        self.state = .closed
    }
}

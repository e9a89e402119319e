import ProxyRules

/// The life of one HTTP/1.1 client connection as a pure state machine: what each state owns,
/// events in, actions out. `ProxyHandler` carries the actions out with the channel, the backend
/// pool and RequestControl; tests drive this directly.
///
/// It decides the questions whose answers depend on history: what the next inbound bytes are
/// (a head to scan, body of the current request, bytes to drop, tunnel bytes), whether reads are
/// held, whether the connection carries another request after this one, and what happens when a
/// response's end has been written or the request's body ends after the answer was given.
///
/// Pipelined requests wait as bytes: a head is only scanned once the connection is idle, so the
/// responses go out in order and a broken request behind good ones is answered after them.
struct HTTP1ConnectionMachine {
    /// The request whose exchange is in progress, as the connection sees it.
    struct Request: Equatable {
        var http10: Bool
        var headRequest: Bool
        /// The client may send another request on this connection after this one.
        var keepAlive: Bool
        /// The body still to come, as framed by the head.
        var body: BodyLeft
        /// The response's head is out (a local answer or the backend's).
        var responseStarted = false
        /// The response's end is being written.
        var endWritePending = false
    }

    enum BodyLeft: Equatable {
        /// The body ended (or there was none).
        case ended
        case length(remaining: Int)
        case chunked
    }

    enum State: Equatable {
        /// Between requests: the next bytes are a head.
        case idle
        /// Admitted; waiting for a backend connection. Reads are held.
        case awaitingBackend(Request)
        /// The request goes to the backend, the response comes back.
        case proxying(Request)
        /// The gateway answered before the request's body ended: the rest is read and dropped.
        case discarding(Request)
        /// After a 101: bytes flow both ways untouched until either side closes.
        case tunnel
        case closed
    }

    private(set) var state = State.idle
    /// Requests this connection has carried (a handover closes only connections that had one).
    private(set) var requestsServed = 0

    init() {}

    /// A connection back from `IdleParking`: idle, after the requests it carried before.
    init(resumedAfter requestsServed: Int) {
        self.requestsServed = requestsServed
    }

    var request: Request? {
        switch state {
        case .awaitingBackend(let request), .proxying(let request), .discarding(let request): request
        case .idle, .tunnel, .closed: nil
        }
    }

    private mutating func update(_ change: (inout Request) -> Void) {
        switch state {
        case .awaitingBackend(var request):
            change(&request)
            state = .awaitingBackend(request)
        case .proxying(var request):
            change(&request)
            state = .proxying(request)
        case .discarding(var request):
            change(&request)
            state = .discarding(request)
        case .idle, .tunnel, .closed:
            break
        }
    }

    // MARK: Inbound bytes

    enum InboundAction: Equatable {
        /// Scan a request head from the buffered bytes.
        case scanHead
        /// The bytes are the current request's body: forward them (or keep them for the backend).
        case body
        /// The body ended and the response is not done: later bytes are the next request's, and
        /// wait (reads are held).
        case wait
        /// Read and drop (the body of a request already answered).
        case discardBody
        /// Tunnel bytes, for the backend as they are.
        case tunnel
        /// The connection is closing: drop.
        case drop
    }

    func inboundAction() -> InboundAction {
        switch state {
        case .idle: .scanHead
        case .awaitingBackend(let request), .proxying(let request): request.body == .ended ? .wait : .body
        case .discarding(let request): request.body == .ended ? .wait : .discardBody
        case .tunnel: .tunnel
        case .closed: .drop
        }
    }

    /// Whether reads from the client wait: while a backend connection is on its way, while the
    /// backend cannot take more body, and while bytes of a next request are waiting.
    func holdsReads(backendWritable: Bool, bytesWaiting: Bool) -> Bool {
        switch state {
        case .awaitingBackend: return true
        case .proxying(let request): return !backendWritable || (request.body == .ended && bytesWaiting)
        case .discarding(let request): return request.body == .ended && bytesWaiting
        case .tunnel: return !backendWritable
        case .idle, .closed: return false
        }
    }

    // MARK: Request

    /// A head was scanned. The exchange starts; the core routes and admits it next.
    mutating func requestHead(http10: Bool, headRequest: Bool, keepAlive: Bool, body: BodyLeft) {
        precondition(state == .idle, "a head is only scanned on an idle connection")
        requestsServed += 1
        // Until the core has a backend, the exchange waits for one; a local answer moves on from here.
        state = .awaitingBackend(Request(http10: http10, headRequest: headRequest, keepAlive: keepAlive, body: body))
    }

    /// Body bytes of the current request were taken.
    mutating func bodyProgress(_ left: BodyLeft) {
        update { $0.body = left }
    }

    enum BodyEndAction: Equatable {
        case none
        /// The answer was already out: the connection is idle again.
        case becameIdle
        /// The answer was already out and the connection does not go on.
        case close
    }

    /// The request's body ended (its last byte was taken).
    mutating func bodyEnded() -> BodyEndAction {
        update { $0.body = .ended }
        guard case .discarding(let request) = state, !request.endWritePending else { return .none }
        if request.keepAlive {
            state = .idle
            return .becameIdle
        }
        state = .closed
        return .close
    }

    /// The request waits for a backend connection (again, after one failed before answering:
    /// it goes once more, or to another backend).
    mutating func awaitBackend() {
        if case .proxying(let request) = state { state = .awaitingBackend(request) }
    }

    /// A backend connection carries the request now.
    mutating func backendAttached() {
        if case .awaitingBackend(let request) = state { state = .proxying(request) }
    }

    /// The connection must not carry another request (a drain, a handover, a body that cannot
    /// be finished): the response says `connection: close`.
    mutating func mustClose() {
        update { $0.keepAlive = false }
    }

    /// A response head goes out now: the gateway's own (`local`) or the backend's. Returns
    /// whether it says `connection: close`. A local answer to a request whose body is still
    /// coming ends the connection (the rest is only dropped); a backend may well answer before
    /// the body is all there (an echo streams it back) and the connection goes on.
    mutating func responseHeadWritten(local: Bool) -> Bool {
        update { request in
            if local, request.body != .ended { request.keepAlive = false }
            request.responseStarted = true
        }
        return !(request?.keepAlive ?? false)
    }

    /// The response's end is written now. While its write is in flight the request counts as
    /// running; a body still coming is read and dropped.
    mutating func responseEndWriting() {
        guard var request else { return }
        request.endWritePending = true
        if request.body != .ended {
            request.keepAlive = false
        }
        state = request.body == .ended ? .proxying(request) : .discarding(request)
    }

    enum EndWrittenAction: Equatable {
        /// The connection waits for the next request (take up pipelined bytes).
        case becameIdle
        case close
        /// The body of the answered request is still being dropped.
        case none
    }

    /// The write of the response's end finished.
    mutating func responseEndWritten() -> EndWrittenAction {
        guard var request else { return state == .closed ? .close : .none }
        request.endWritePending = false
        if request.body != .ended {
            state = .discarding(request)
            return .none
        }
        if request.keepAlive {
            state = .idle
            return .becameIdle
        }
        state = .closed
        return .close
    }

    /// The backend switched protocols: a tunnel from now.
    mutating func tunnelStarted() {
        state = .tunnel
    }

    mutating func closed() {
        state = .closed
    }

    var isIdle: Bool { state == .idle }
    var isTunnel: Bool { state == .tunnel }
    var isClosed: Bool { state == .closed }
    var isAwaitingBackend: Bool {
        if case .awaitingBackend = state { return true }
        return false
    }
    var isProxying: Bool {
        if case .proxying = state { return true }
        return false
    }
}

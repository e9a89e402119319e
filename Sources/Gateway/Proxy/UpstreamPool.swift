import NIOCore
import NIOPosix

/// The idle keep-alive connections to every backend, for one event loop.
///
/// One pool per event loop and only touched on it, so no locks: a client connection always
/// borrows an upstream connection living on its own loop and the two talk by direct calls.
///
/// Keyed by the backend's identity (its RequestControl counter, one object per backend of a
/// deployment), not its address: finding the idle connections of the chosen backend hashes a
/// pointer, not a host string, and each backend's connections are a stack object of their own,
/// so taking and returning one never goes through a dictionary's in-place mutation (whose
/// accessor allocated per request).
final class UpstreamPool {
    /// The idle connections to one backend, most recently used last.
    ///
    /// Above the pool's idle cap, a returned connection is kept until the next trim (see
    /// `release`), which closes the surplus that stayed idle the whole time since the one before.
    final class IdleStack: TimerWheelEntry {
        let address: HostPort
        private(set) var connections: [UpstreamConnection] = []
        /// The fewest connections the stack held since the last trim: those below it (the
        /// oldest, at the front) were not taken in all that time.
        private var lowWater = 0
        /// Above this many, the stack is trimmed; the pool's `maxIdlePerBackend`.
        private let maxIdle: Int
        var timerSlot = TimerWheelSlot()

        init(address: HostPort, maxIdle: Int) {
            self.address = address
            self.maxIdle = maxIdle
        }

        /// The most recently used connection.
        fileprivate func pop() -> UpstreamConnection? {
            let connection = connections.popLast()
            lowWater = min(lowWater, connections.count)
            return connection
        }

        /// Keeps `connection`; true when the stack is now above its cap (a trim is due).
        fileprivate func push(_ connection: UpstreamConnection) -> Bool {
            if !timerSlot.isScheduled { lowWater = connections.count + 1 }
            connections.append(connection)
            return connections.count > maxIdle
        }

        /// Forgets `connection` (it closed while idle); nothing if it is not here.
        fileprivate func remove(_ connection: UpstreamConnection) {
            connections.removeAll { $0 === connection }
            lowWater = min(lowWater, connections.count)
        }

        /// Takes every connection out (to close them).
        fileprivate func removeAll() -> [UpstreamConnection] {
            defer {
                connections.removeAll()
                lowWater = 0
            }
            return connections
        }

        /// Closes the connections above the cap that were idle since the last trim, oldest
        /// first; true while the stack is still above the cap (another trim is due).
        fileprivate func trim() -> Bool {
            let surplus = min(connections.count - maxIdle, lowWater)
            if surplus > 0 {
                let victims = connections[..<surplus]
                connections.removeFirst(surplus)
                for connection in victims {
                    connection.handler.onIdleClose = nil
                    connection.close()
                }
            }
            lowWater = connections.count
            return connections.count > maxIdle
        }

        /// Trim time (scheduled by the pool): again a trim interval later while above the cap.
        func timerFired(now: UInt64) {
            if trim() { timers?.schedule(self, in: UpstreamPool.trimInterval) }
        }

        /// The loop's timers, which trim the stack. The wheel holds the stack only while it is
        /// scheduled, and the pool cancels that when it closes its connections or retires it.
        fileprivate var timers: LoopTimers?
    }

    let eventLoop: EventLoop
    private let connectTimeout: TimeAmount
    private let maxIdlePerBackend: Int
    /// The loop's timers, for the trims of stacks above the cap; nil: the surplus closes at once.
    private let timers: LoopTimers?
    private var stacks: [ObjectIdentifier: IdleStack] = [:]
    /// How long a connection above the cap may stay idle before a trim closes it (see `release`).
    static let trimInterval: TimeAmount = .seconds(1)

    init(eventLoop: EventLoop, connectTimeout: TimeAmount, maxIdlePerBackend: Int = 256, timers: LoopTimers? = nil) {
        self.eventLoop = eventLoop
        self.connectTimeout = connectTimeout
        self.maxIdlePerBackend = maxIdlePerBackend
        self.timers = timers
    }

    /// The stack of `backend`, made on first use. Stacks are never removed (one per backend the
    /// loop ever used; connections hold theirs unowned).
    /// A counter freed by a reload and a new one at the same memory would share a key: the
    /// address tells them apart, and the old backend's stack is dropped (closing its connections).
    func stack(for backend: LoadBalancer.Backend) -> IdleStack {
        let key = ObjectIdentifier(backend.counter)
        if let stack = stacks[key] {
            if stack.address == backend.address { return stack }
            retire(stack)
        }
        let stack = IdleStack(address: backend.address, maxIdle: maxIdlePerBackend)
        stack.timers = timers
        stacks[key] = stack
        return stack
    }

    private func retire(_ stack: IdleStack) {
        if stack.timerSlot.isScheduled { timers?.cancel(stack) }
        for connection in stack.removeAll() {
            connection.handler.onIdleClose = nil
            connection.close()
        }
    }

    /// An idle live connection to `backend`, most recently used first (the likeliest to be alive).
    func takeIdle(_ backend: LoadBalancer.Backend) -> UpstreamConnection? {
        eventLoop.preconditionInEventLoop()
        guard let stack = stacks[ObjectIdentifier(backend.counter)], stack.address == backend.address else { return nil }
        while let connection = stack.pop() {
            if connection.isActive {
                return connection
            }
        }
        return nil
    }

    /// Opens a new connection to `backend` on this loop; it returns to that backend's stack.
    func connect(_ backend: LoadBalancer.Backend) -> EventLoopFuture<UpstreamConnection> {
        connect(stack(for: backend))
    }

    /// Opens a new connection to the backend `connection` went to.
    func connect(sameAs connection: UpstreamConnection) -> EventLoopFuture<UpstreamConnection> {
        connect(connection.stack)
    }

    private func connect(_ stack: IdleStack) -> EventLoopFuture<UpstreamConnection> {
        let address = stack.address
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(connectTimeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // Bytes only: the exchange writes the request head itself and frames the
                    // response with its `BackendResponseReader` (see UpstreamConnection).
                    try channel.pipeline.syncOperations.addHandler(UpstreamHandler())
                }
            }
        return bootstrap.connect(host: address.host, port: address.port).flatMapThrowing { channel in
            let handler = try channel.pipeline.syncOperations.handler(type: UpstreamHandler.self)
            return UpstreamConnection(channel: channel, stack: stack, handler: handler)
        }
    }

    /// Takes a connection back after a complete exchange that left it reusable.
    ///
    /// The idle cap bounds the connections that stay idle, not the ones between two requests:
    /// above it, a returned connection is kept and the stack is trimmed `trimInterval` later,
    /// down to the cap but only of connections that were not taken meanwhile. Closing it at once
    /// made a load with more requests in flight than the cap (500 HTTP/2 streams) close and
    /// reopen a connection for about one request in eight, as a loop tick's responses returned
    /// theirs before its new requests took them again. The surplus is bounded by the requests
    /// in flight in the last trim interval or two.
    func release(_ connection: UpstreamConnection) {
        eventLoop.preconditionInEventLoop()
        connection.handler.delegate = nil
        guard connection.isActive else { return }
        let stack = connection.stack
        guard timers != nil || stack.connections.count < maxIdlePerBackend else {
            connection.close()
            return
        }
        if connection.handler.onIdleClose == nil {
            // Set once per connection (not per exchange: a closure is an allocation). Removing a
            // connection that is not idle is a no-op. The stack lives as long as the pool.
            connection.handler.onIdleClose = { [unowned stack, unowned connection] in
                stack.remove(connection)
            }
        }
        if stack.push(connection), !stack.timerSlot.isScheduled {
            timers?.schedule(stack, in: Self.trimInterval)
        }
    }

    /// Closes the idle connections to one backend address (it left the rotation), or to all.
    func closeIdle(backend: HostPort? = nil) {
        eventLoop.preconditionInEventLoop()
        var victims: [UpstreamConnection] = []
        for stack in stacks.values where backend == nil || stack.address == backend {
            if stack.timerSlot.isScheduled { timers?.cancel(stack) }
            victims += stack.removeAll()
        }
        for connection in victims {
            connection.handler.onIdleClose = nil
            connection.close()
        }
    }
}

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
    final class IdleStack {
        let address: HostPort
        var connections: [UpstreamConnection] = []

        init(address: HostPort) {
            self.address = address
        }
    }

    let eventLoop: EventLoop
    private let connectTimeout: TimeAmount
    private let maxIdlePerBackend: Int
    private var stacks: [ObjectIdentifier: IdleStack] = [:]

    init(eventLoop: EventLoop, connectTimeout: TimeAmount, maxIdlePerBackend: Int = 256) {
        self.eventLoop = eventLoop
        self.connectTimeout = connectTimeout
        self.maxIdlePerBackend = maxIdlePerBackend
    }

    /// The stack of `backend`, made on first use. Stacks are never removed (one per backend the
    /// loop ever used; connections hold theirs unowned).
    /// A counter freed by a reload and a new one at the same memory would share a key: the
    /// address tells them apart, and the old backend's stack is dropped (closing its connections).
    private func stack(for backend: LoadBalancer.Backend) -> IdleStack {
        let key = ObjectIdentifier(backend.counter)
        if let stack = stacks[key] {
            if stack.address == backend.address { return stack }
            retire(stack)
        }
        let stack = IdleStack(address: backend.address)
        stacks[key] = stack
        return stack
    }

    private func retire(_ stack: IdleStack) {
        let victims = stack.connections
        stack.connections.removeAll()
        for connection in victims {
            connection.handler.onIdleClose = nil
            connection.close()
        }
    }

    /// An idle live connection to `backend`, most recently used first (the likeliest to be alive).
    func takeIdle(_ backend: LoadBalancer.Backend) -> UpstreamConnection? {
        eventLoop.preconditionInEventLoop()
        guard let stack = stacks[ObjectIdentifier(backend.counter)], stack.address == backend.address else { return nil }
        while let connection = stack.connections.popLast() {
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
    func release(_ connection: UpstreamConnection) {
        eventLoop.preconditionInEventLoop()
        connection.handler.delegate = nil
        guard connection.isActive else { return }
        let stack = connection.stack
        guard stack.connections.count < maxIdlePerBackend else {
            connection.close()
            return
        }
        if connection.handler.onIdleClose == nil {
            // Set once per connection (not per exchange: a closure is an allocation). Removing a
            // connection that is not idle is a no-op. The stack lives as long as the pool.
            connection.handler.onIdleClose = { [unowned stack, unowned connection] in
                stack.connections.removeAll { $0 === connection }
            }
        }
        stack.connections.append(connection)
    }

    /// Closes the idle connections to one backend address (it left the rotation), or to all.
    func closeIdle(backend: HostPort? = nil) {
        eventLoop.preconditionInEventLoop()
        var victims: [UpstreamConnection] = []
        for stack in stacks.values where backend == nil || stack.address == backend {
            victims += stack.connections
            stack.connections.removeAll()
        }
        for connection in victims {
            connection.handler.onIdleClose = nil
            connection.close()
        }
    }
}

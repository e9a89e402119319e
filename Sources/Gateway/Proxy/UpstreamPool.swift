import NIOCore
import NIOPosix

/// The idle keep-alive connections to every backend, for one event loop.
///
/// One pool per event loop and only touched on it, so no locks: a client connection always
/// borrows an upstream connection living on its own loop and the two talk by direct calls.
final class UpstreamPool {
    let eventLoop: EventLoop
    private let connectTimeout: TimeAmount
    private let maxIdlePerBackend: Int
    private var idle: [HostPort: [UpstreamConnection]] = [:]

    init(eventLoop: EventLoop, connectTimeout: TimeAmount, maxIdlePerBackend: Int = 256) {
        self.eventLoop = eventLoop
        self.connectTimeout = connectTimeout
        self.maxIdlePerBackend = maxIdlePerBackend
    }

    /// An idle live connection to `backend`, most recently used first (the likeliest to be alive).
    func takeIdle(_ backend: HostPort) -> UpstreamConnection? {
        eventLoop.preconditionInEventLoop()
        // Mutated in place: a copied-out array would be copied again (copy-on-write) on every
        // request, since the dictionary still holds it.
        while let connection = idle[backend]?.popLast() {
            if connection.isActive {
                return connection
            }
        }
        return nil
    }

    /// Opens a new connection on this loop.
    func connect(_ backend: HostPort) -> EventLoopFuture<UpstreamConnection> {
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
        return bootstrap.connect(host: backend.host, port: backend.port).flatMapThrowing { channel in
            let handler = try channel.pipeline.syncOperations.handler(type: UpstreamHandler.self)
            return UpstreamConnection(channel: channel, backend: backend, handler: handler)
        }
    }

    /// Takes a connection back after a complete exchange that left it reusable.
    func release(_ connection: UpstreamConnection) {
        eventLoop.preconditionInEventLoop()
        connection.handler.delegate = nil
        guard connection.isActive else { return }
        let backend = connection.backend
        guard idle[backend, default: []].count < maxIdlePerBackend else {
            connection.close()
            return
        }
        if connection.handler.onIdleClose == nil {
            // Set once per connection (not per exchange: a closure is an allocation). Removing a
            // connection that is not idle is a no-op. The pool lives as long as its event loop.
            let id = ObjectIdentifier(connection)
            connection.handler.onIdleClose = { [unowned self] in
                self.remove(id, backend: backend)
            }
        }
        idle[backend, default: []].append(connection)
    }

    /// Closes the idle connections to one backend (it left the rotation), or to all.
    func closeIdle(backend: HostPort? = nil) {
        eventLoop.preconditionInEventLoop()
        let victims: [UpstreamConnection]
        if let backend {
            victims = idle.removeValue(forKey: backend) ?? []
        } else {
            victims = idle.values.flatMap { $0 }
            idle.removeAll()
        }
        for connection in victims {
            connection.handler.onIdleClose = nil
            connection.close()
        }
    }

    private func remove(_ id: ObjectIdentifier, backend: HostPort) {
        idle[backend]?.removeAll { ObjectIdentifier($0) == id }
    }
}

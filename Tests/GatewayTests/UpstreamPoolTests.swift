import NIOCore
import NIOEmbedded
import RequestControl
import Testing

@testable import Gateway

/// The pool's idle cap: connections above it close once they have stayed idle a trim interval,
/// not when a burst of responses returns them just before the next requests take them again.
@Suite struct UpstreamPoolTests {
    struct Fixture {
        let loop = EmbeddedEventLoop()
        let timers: LoopTimers
        let backend: LoadBalancer.Backend

        init() throws {
            let config = try ConfigLoader.parse(
                yaml: """
                    listen: 127.0.0.1:0
                    deployments:
                      - name: shop
                        backends: [127.0.0.1:9]
                    """,
                source: "test.yaml")
            let controller = RequestController(configuration: BackendMembership.requestControlConfiguration(config))
            let address = HostPort(host: "127.0.0.1", port: 9)
            backend = LoadBalancer.Backend(
                address: address, counter: try #require(controller.backend(deployment: "shop", address: address.description)))
            timers = LoopTimers(eventLoop: loop, resolution: .milliseconds(100), slotCount: 64, clock: { [loop] in loop.now })
        }

        func pool(timers: LoopTimers?) -> UpstreamPool {
            UpstreamPool(eventLoop: loop, connectTimeout: .seconds(1), maxIdlePerBackend: 2, timers: timers)
        }

        /// A connected connection of `pool`'s stack for the backend, as `connect` makes them.
        func connections(_ count: Int, of pool: UpstreamPool) throws -> [UpstreamConnection] {
            try (0..<count).map { _ in
                let handler = UpstreamHandler()
                let channel = EmbeddedChannel(handler: handler, loop: loop)
                try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
                return UpstreamConnection(channel: channel, stack: pool.stack(for: backend), handler: handler)
            }
        }
    }

    @Test func connectionsAboveTheCapCloseAfterStayingIdleATrimInterval() throws {
        let fixture = try Fixture()
        let pool = fixture.pool(timers: fixture.timers)
        let stack = pool.stack(for: fixture.backend)
        let connections = try fixture.connections(4, of: pool)
        for connection in connections { pool.release(connection) }
        // Four idle with a cap of two: all kept for now.
        #expect(stack.connections.count == 4)
        #expect(connections.allSatisfy { $0.isActive })

        // All four taken again and returned within the interval: none stayed idle, none closes.
        for _ in 0..<4 { #expect(pool.takeIdle(fixture.backend) != nil) }
        for connection in connections { pool.release(connection) }
        fixture.loop.advanceTime(by: .seconds(1))
        #expect(stack.connections.count == 4)
        #expect(connections.allSatisfy { $0.isActive })

        // Two taken and returned in the next interval: the two others stayed idle and close.
        let first = try #require(pool.takeIdle(fixture.backend))
        let second = try #require(pool.takeIdle(fixture.backend))
        #expect(first === connections[3] && second === connections[2])
        pool.release(first)
        pool.release(second)
        fixture.loop.advanceTime(by: .milliseconds(999))
        #expect(stack.connections.count == 4)
        fixture.loop.advanceTime(by: .milliseconds(1))
        #expect(stack.connections.map(ObjectIdentifier.init) == [connections[3], connections[2]].map(ObjectIdentifier.init))
        #expect(!connections[0].isActive && !connections[1].isActive)
        #expect(connections[2].isActive && connections[3].isActive)
        // At the cap: no trim pending.
        #expect(fixture.timers.count == 0)
        try fixture.loop.syncShutdownGracefully()
    }

    @Test func aConnectionTakenFromAboveTheCapIsNotClosed() throws {
        let fixture = try Fixture()
        let pool = fixture.pool(timers: fixture.timers)
        let stack = pool.stack(for: fixture.backend)
        let connections = try fixture.connections(3, of: pool)
        for connection in connections { pool.release(connection) }
        let busy = try #require(pool.takeIdle(fixture.backend))
        fixture.loop.advanceTime(by: .seconds(1))
        // Two idle, at the cap; the busy one is untouched and may return.
        #expect(stack.connections.count == 2)
        #expect(busy.isActive)
        #expect(connections.allSatisfy { $0.isActive })
        pool.release(busy)
        #expect(stack.connections.count == 3)
        fixture.loop.advanceTime(by: .seconds(1))
        // The oldest, idle since the start, closes.
        #expect(!connections[0].isActive)
        #expect(stack.connections.count == 2)
        try fixture.loop.syncShutdownGracefully()
    }

    @Test func withoutTimersTheSurplusClosesAtOnce() throws {
        let fixture = try Fixture()
        let pool = fixture.pool(timers: nil)
        let connections = try fixture.connections(3, of: pool)
        for connection in connections { pool.release(connection) }
        #expect(pool.stack(for: fixture.backend).connections.count == 2)
        #expect(!connections[2].isActive)
        try fixture.loop.syncShutdownGracefully()
    }

    @Test func closeIdleCancelsThePendingTrim() throws {
        let fixture = try Fixture()
        let pool = fixture.pool(timers: fixture.timers)
        let connections = try fixture.connections(3, of: pool)
        for connection in connections { pool.release(connection) }
        #expect(fixture.timers.count == 1)
        pool.closeIdle()
        #expect(fixture.timers.count == 0)
        #expect(!connections.contains { $0.isActive })
        try fixture.loop.syncShutdownGracefully()
    }
}

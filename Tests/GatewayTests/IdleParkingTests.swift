import Dispatch
import Foundation
import NIOCore
import Synchronization
import Testing

@testable import Gateway

#if canImport(Glibc)
import Glibc
#endif

/// `IdleParking` on real sockets (socket pairs): what comes back, what is closed, and when.
@Suite(.timeLimit(.minutes(1)))
struct IdleParkingTests {
    /// Records what the parking hands back and counts, and lets a test wait for it (bounded).
    final class Recorder: Sendable {
        let resumed = Mutex<[(CInt, ParkedConnection)]>([])
        let open = Atomic<Int>(0)
        let changed = DispatchSemaphore(value: 0)

        func waitUntil(_ what: String, timeout: Duration = .seconds(5), _ condition: () -> Bool) throws {
            let deadline = ContinuousClock.now + timeout
            while !condition() {
                guard ContinuousClock.now < deadline else { throw TestFailure("timed out waiting for \(what)") }
                _ = changed.wait(timeout: .now() + .milliseconds(20))
            }
        }
    }

    struct TestFailure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    static func makeParking(_ recorder: Recorder) throws -> IdleParking {
        try IdleParking(
            traffic: TrafficCounters(),
            resume: { descriptor, connection in
                recorder.resumed.withLock { $0.append((descriptor, connection)) }
                recorder.changed.signal()
            },
            counted: { change in
                recorder.open.add(change, ordering: .relaxed)
                recorder.changed.signal()
            })
    }

    /// A connected pair: the first end is parked, the second plays the client.
    static func socketPair() throws -> (parked: CInt, client: CInt) {
        var pair: [CInt] = [0, 0]
        guard socketpair(AF_UNIX, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            throw TestFailure("socketpair: \(errno)")
        }
        return (pair[0], pair[1])
    }

    static func connection(loop: Int = 0, in amount: TimeAmount = .seconds(60), served: Int = 1, deployment: String? = "shop")
        -> ParkedConnection
    {
        ParkedConnection(
            loop: loop, idleDeadline: (NIODeadline.now() + amount).uptimeNanoseconds, requestsServed: served,
            lastDeployment: deployment, clientAddress: "127.0.0.1", clientPort: 4242)
    }

    /// True when the client end reads end-of-file within `timeout` (the parked end was closed).
    static func readsEOF(_ client: CInt, timeout: Int32 = 5000) -> Bool {
        var poller = pollfd(fd: client, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, timeout) == 1 else { return false }
        var byte: UInt8 = 0
        return recv(client, &byte, 1, 0) == 0
    }

    @Test func aParkedSocketThatSpeaksGoesBackWithWhatItKept() throws {
        let recorder = Recorder()
        let parking = try Self.makeParking(recorder)
        defer { parking.stop() }
        let (parked, client) = try Self.socketPair()
        defer { close(client) }
        let kept = Self.connection(loop: 1, served: 3, deployment: "api")
        #expect(parking.park(parked, kept))
        #expect(recorder.open.load(ordering: .relaxed) == 1)
        #expect(parking.count == 1)
        #expect(recorder.resumed.withLock { $0.isEmpty })

        let request = Array("GET / HTTP/1.1\r\n\r\n".utf8)
        #expect(write(client, request, request.count) == request.count)
        try recorder.waitUntil("the socket to come back") { recorder.resumed.withLock { !$0.isEmpty } }
        let (descriptor, connection) = recorder.resumed.withLock { $0[0] }
        defer { close(descriptor) }
        #expect(descriptor == parked)
        #expect(connection == kept)
        #expect(parking.count == 0)
        // Handed back, not closed: still counted open (its new channel counts it out), and the
        // request is there to be read.
        #expect(recorder.open.load(ordering: .relaxed) == 1)
        var buffer = [UInt8](repeating: 0, count: 64)
        #expect(read(descriptor, &buffer, buffer.count) == request.count)
    }

    @Test func aClientThatClosesWhileParkedIsClosedHere() throws {
        let recorder = Recorder()
        let parking = try Self.makeParking(recorder)
        defer { parking.stop() }
        let (parked, client) = try Self.socketPair()
        #expect(parking.park(parked, Self.connection()))
        close(client)
        try recorder.waitUntil("the parked socket to be closed") { recorder.open.load(ordering: .relaxed) == 0 }
        #expect(parking.count == 0)
        #expect(recorder.resumed.withLock { $0.isEmpty })
    }

    @Test func aRequestFollowedByACloseStillGoesBack() throws {
        let recorder = Recorder()
        let parking = try Self.makeParking(recorder)
        defer { parking.stop() }
        let (parked, client) = try Self.socketPair()
        // Both arrive before the parking looks: the request must still be answered.
        let request = Array("GET / HTTP/1.1\r\nConnection: close\r\n\r\n".utf8)
        #expect(write(client, request, request.count) == request.count)
        shutdown(client, CInt(SHUT_WR))
        defer { close(client) }
        #expect(parking.park(parked, Self.connection()))
        try recorder.waitUntil("the socket to come back") { recorder.resumed.withLock { !$0.isEmpty } }
        recorder.resumed.withLock { close($0[0].0) }
    }

    @Test func theIdleDeadlineClosesAParkedSocket() throws {
        let recorder = Recorder()
        let parking = try Self.makeParking(recorder)
        defer { parking.stop() }
        let (parked, client) = try Self.socketPair()
        defer { close(client) }
        let parkedAt = ContinuousClock.now
        #expect(parking.park(parked, Self.connection(in: .milliseconds(300))))
        #expect(Self.readsEOF(client))
        #expect(ContinuousClock.now - parkedAt >= .milliseconds(300))
        try recorder.waitUntil("the count to drop") { recorder.open.load(ordering: .relaxed) == 0 }
        #expect(recorder.resumed.withLock { $0.isEmpty })
    }

    @Test func drainsCloseWhatTheyCover() throws {
        let recorder = Recorder()
        let parking = try Self.makeParking(recorder)
        defer { parking.stop() }
        let shopOnLoop0 = try Self.socketPair()
        let apiOnLoop0 = try Self.socketPair()
        let shopOnLoop1 = try Self.socketPair()
        let neverServed = try Self.socketPair()
        defer { for pair in [shopOnLoop0, apiOnLoop0, shopOnLoop1, neverServed] { close(pair.client) } }
        #expect(parking.park(shopOnLoop0.parked, Self.connection(loop: 0, deployment: "shop")))
        #expect(parking.park(apiOnLoop0.parked, Self.connection(loop: 0, deployment: "api")))
        #expect(parking.park(shopOnLoop1.parked, Self.connection(loop: 1, deployment: "shop")))
        #expect(parking.park(neverServed.parked, Self.connection(loop: 1, served: 0, deployment: nil)))
        #expect(recorder.open.load(ordering: .relaxed) == 4)

        // A drain of "shop" on loop 0 closes only loop 0's shop connection.
        parking.closeIdle(loop: 0, deployment: "shop")
        #expect(Self.readsEOF(shopOnLoop0.client))
        #expect(parking.count == 3)
        // A handover on loop 1 closes the one that served a request, not the one that did not.
        parking.closeServed(loop: 1)
        #expect(Self.readsEOF(shopOnLoop1.client))
        #expect(parking.count == 2)
        // A drain of the whole gateway on loop 0.
        parking.closeIdle(loop: 0, deployment: nil)
        #expect(Self.readsEOF(apiOnLoop0.client))
        parking.closeAll(loop: 1)
        #expect(Self.readsEOF(neverServed.client))
        #expect(parking.count == 0)
        #expect(recorder.open.load(ordering: .relaxed) == 0)
        #expect(recorder.resumed.withLock { $0.isEmpty })
    }

    @Test func stopClosesEverythingAndRefusesMore() throws {
        let recorder = Recorder()
        let parking = try Self.makeParking(recorder)
        let (parked, client) = try Self.socketPair()
        defer { close(client) }
        #expect(parking.park(parked, Self.connection()))
        parking.stop()
        #expect(Self.readsEOF(client))
        #expect(recorder.open.load(ordering: .relaxed) == 0)
        let (another, anotherClient) = try Self.socketPair()
        defer {
            close(another)
            close(anotherClient)
        }
        // The caller keeps a socket the parking would not take.
        #expect(!parking.park(another, Self.connection()))
        #expect(recorder.open.load(ordering: .relaxed) == 0)
    }
}

import Glibc
import Keeper
import NIOCore
import NIOPosix
import Testing

/// The mechanism of a zero-refusal worker switch (issue 10), with real sockets: a keeper binds a
/// listening socket once and passes copies over a socketpair; a NIO server adopts each copy; the
/// new worker accepts before the old one stops, so a client connecting the whole time is never
/// refused.
@Suite struct ListenerHandoverTests {
    /// A "worker": a NIO server on a passed descriptor that answers each connection with its name.
    static func worker(_ fd: Int32, name: String) async throws -> Channel {
        try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Greeter(name: name)) }
            }
            .withBoundSocket(fd).get()
    }

    /// Says its worker's name to each connection, then closes it.
    final class Greeter: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let name: String
        init(name: String) { self.name = name }

        func channelActive(context: ChannelHandlerContext) {
            context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string: name))).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        }
    }

    /// Connects and reads what the server says before it closes; nil when refused.
    static func ask(port: Int) -> String? {
        guard let fd = connectTo(port: port) else { return nil }
        defer { close(fd) }
        return readAnswer(fd)
    }

    /// A connected descriptor, or nil when refused.
    static func connectTo(port: Int) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            return nil
        }
        return fd
    }

    static func readAnswer(_ fd: Int32) -> String {
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = recv(fd, &buffer, buffer.count, 0)
        return count > 0 ? String(decoding: buffer.prefix(count), as: UTF8.self) : ""
    }

    static func passCopy(of listener: Int32) throws -> Int32 {
        var pair: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0 else {
            throw DescriptorPassing.Failure(operation: "socketpair", code: errno)
        }
        defer { close(pair[0]); close(pair[1]) }
        try DescriptorPassing.send(pair[0], bytes: try KeeperFraming.encode(.drain(reason: "handover")), descriptors: [listener])
        let (_, descriptors) = try DescriptorPassing.receive(pair[1])
        guard let fd = descriptors.first else { throw DescriptorPassing.Failure(operation: "receive", code: EINVAL) }
        return fd
    }

    @Test func aListenerPassedToANewWorkerIsNeverClosedToClients() async throws {
        let listener = try ListeningSocket.bind(host: "127.0.0.1", port: 0)
        defer { close(listener) }
        let port = try #require(SocketAddress.boundPort(listener))

        let first = try await Self.worker(try Self.passCopy(of: listener), name: "one")
        #expect(Self.ask(port: port) == "one")

        // The new worker accepts on its copy before the old one closes its own.
        let second = try await Self.worker(try Self.passCopy(of: listener), name: "two")
        try await first.close()
        var answers: [String?] = []
        for _ in 0..<20 { answers.append(Self.ask(port: port)) }
        #expect(answers.allSatisfy { $0 == "two" }, "\(answers)")

        // With no worker at all the keeper's copy keeps the socket: a client waits in the
        // backlog (connected, unanswered) instead of being refused, and the next worker answers it.
        try await second.close()
        let waiting = try #require(Self.connectTo(port: port), "refused while no worker accepted")
        defer { close(waiting) }
        let third = try await Self.worker(try Self.passCopy(of: listener), name: "three")
        #expect(Self.readAnswer(waiting) == "three")
        try await third.close()
    }
}

extension SocketAddress {
    /// The port a listening descriptor is bound to.
    static func boundPort(_ fd: Int32) -> Int? {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) == 0 }
        }
        return ok ? Int(UInt16(bigEndian: address.sin_port)) : nil
    }
}

import Glibc
import Testing

@testable import Keeper

/// Real descriptors over a real socketpair, as the keeper hands its listeners to a worker.
@Suite struct DescriptorPassingTests {
    static func socketPair() throws -> (Int32, Int32) {
        var fds: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0 else {
            throw DescriptorPassing.Failure(operation: "socketpair", code: errno)
        }
        return (fds[0], fds[1])
    }

    @Test func pipesPassedAlongWithAFrameStillWork() throws {
        let (keeper, worker) = try Self.socketPair()
        defer { close(keeper); close(worker) }
        var first: [Int32] = [0, 0]
        var second: [Int32] = [0, 0]
        #expect(pipe(&first) == 0)
        #expect(pipe(&second) == 0)
        defer { for fd in first + second { close(fd) } }

        let frame = try KeeperFraming.encode(.drain(reason: "test"))
        try DescriptorPassing.send(keeper, bytes: frame, descriptors: [first[1], second[1]])
        let (bytes, descriptors) = try DescriptorPassing.receive(worker)
        defer { for fd in descriptors { close(fd) } }
        #expect(bytes == frame)
        #expect(descriptors.count == 2)
        // Received as new descriptors (close-on-exec) for the same pipes: writing through them
        // reaches the original read ends.
        #expect(descriptors.allSatisfy { fcntl($0, F_GETFD) & FD_CLOEXEC != 0 })
        for (fd, readEnd, text) in [(descriptors[0], first[0], "one"), (descriptors[1], second[0], "two")] {
            #expect(write(fd, text, text.utf8.count) == text.utf8.count)
            var buffer = [UInt8](repeating: 0, count: 16)
            let count = read(readEnd, &buffer, buffer.count)
            #expect(String(decoding: buffer.prefix(max(count, 0)), as: UTF8.self) == text)
        }
    }

    @Test func bytesWithoutDescriptorsAndTheClose() throws {
        let (keeper, worker) = try Self.socketPair()
        defer { close(worker) }
        try DescriptorPassing.send(keeper, bytes: [1, 2, 3], descriptors: [])
        let (bytes, descriptors) = try DescriptorPassing.receive(worker)
        #expect(bytes == [1, 2, 3])
        #expect(descriptors.isEmpty)
        close(keeper)
        #expect(try DescriptorPassing.receive(worker).bytes.isEmpty)
    }
}

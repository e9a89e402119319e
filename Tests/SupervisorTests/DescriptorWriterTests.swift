import Foundation
import Glibc
import Synchronization
import Testing

@testable import Supervisor

/// A non-blocking pipe that fills up is waited on, not taken for a broken one: the access log
/// with `path: "-"` once stopped for good after one full stdout.
@Suite struct DescriptorWriterTests {
    @Test func aFullNonBlockingPipeIsWaitedOnUntilEveryByteIsWritten() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]) }
        _ = fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK)
        let size = 1 << 20  // far more than a pipe holds (64 KiB)
        let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0) }
        let reader = fds[0]
        let done = DispatchSemaphore(value: 0)
        let collected = LockedBytes()
        Thread.detachNewThread {
            var buffer = [UInt8](repeating: 0, count: 16 * 1024)
            while true {
                let count = read(reader, &buffer, buffer.count)
                if count <= 0 { break }
                collected.append(buffer[0..<count])
            }
            done.signal()
        }
        let failure = DescriptorWriter.writeAll(bytes, to: fds[1])
        close(fds[1])
        #expect(done.wait(timeout: .now() + 10) == .success)
        #expect(failure == nil)
        #expect(collected.value == bytes)
    }

    @Test func aClosedReaderIsAFailureNamedByErrno() {
        signal(SIGPIPE, SIG_IGN)
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        close(fds[0])
        defer { close(fds[1]) }
        #expect(DescriptorWriter.writeAll([1, 2, 3], to: fds[1]) == EPIPE)
    }
}

final class LockedBytes: Sendable {
    private let bytes = Mutex<[UInt8]>([])
    func append(_ more: ArraySlice<UInt8>) { bytes.withLock { $0 += more } }
    var value: [UInt8] { bytes.withLock { $0 } }
}

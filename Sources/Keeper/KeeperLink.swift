import Foundation
import Glibc
import Synchronization

/// One end of the keeper–worker socket: framed messages out (any thread), and a thread of its
/// own that reads messages in and hands them on, with the descriptors that came along.
///
/// A plain thread with blocking reads rather than an event loop: the keeper has no NIO (it must
/// stay small and stable), the messages are few, and a blocked reader costs nothing.
public final class KeeperLink: Sendable {
    public let descriptor: Int32
    private let writing = Mutex(false)

    /// Takes over `descriptor` (a connected Unix stream socket).
    public init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    /// Sends one message, with `descriptors` attached; false if the other side is gone.
    @discardableResult
    public func send(_ message: KeeperMessage, descriptors: [Int32] = []) -> Bool {
        guard let frame = try? KeeperFraming.encode(message) else { return false }
        return writing.withLock { closed in
            guard !closed else { return false }
            do {
                try DescriptorPassing.send(descriptor, bytes: frame, descriptors: descriptors)
                return true
            } catch {
                return false
            }
        }
    }

    /// Starts the reader thread: `message` for each message (descriptors only with the first
    /// message of the read that carried them), then `closed` once, with the reason when it was
    /// not a plain end of file. The descriptor is closed after `closed`.
    public func startReading(
        message: @escaping @Sendable (KeeperMessage, [Int32]) -> Void,
        closed: @escaping @Sendable (String?) -> Void
    ) {
        let descriptor = self.descriptor
        let thread = Thread { [self] in
            var decoder = KeeperFraming.Decoder()
            var reason: String?
            reading: while true {
                let received: (bytes: [UInt8], descriptors: [Int32])
                do {
                    received = try DescriptorPassing.receive(descriptor)
                } catch {
                    reason = "\(error)"
                    break
                }
                if received.bytes.isEmpty {
                    received.descriptors.forEach { _ = Glibc.close($0) }
                    break
                }
                decoder.append(received.bytes)
                var attached = received.descriptors
                do {
                    while let next = try decoder.next() {
                        message(next, attached)
                        attached = []
                    }
                } catch {
                    reason = "\(error)"
                    break reading
                }
                attached.forEach { _ = Glibc.close($0) }
            }
            writing.withLock { $0 = true }
            closed(reason)
            _ = Glibc.close(descriptor)
        }
        thread.name = "keeper-link"
        thread.start()
    }

    /// Ends the link: the other side reads end of file, and this side's reader ends.
    public func shutDown() {
        _ = Glibc.shutdown(descriptor, Int32(SHUT_RDWR))
    }
}

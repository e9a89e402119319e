import Glibc

/// Writes a whole buffer to a descriptor: short writes and EINTR are retried, and a
/// non-blocking descriptor that is full (EAGAIN) is waited on with `poll` rather than taken for
/// a failure. The one loop behind the output relay, the instances' log files and the access log.
public enum DescriptorWriter {
    /// How long one wait for a full descriptor may last before the write gives up (a reader
    /// that stopped for good must not hold the writer for ever).
    public static let maxStall: Int32 = 5_000

    /// Returns nil when every byte was written, else the errno of the failure.
    public static func writeAll(_ buffer: UnsafeRawBufferPointer, to descriptor: Int32) -> Int32? {
        var offset = 0
        while offset < buffer.count {
            let written = write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
            if written > 0 {
                offset += written
            } else if written < 0 && errno == EINTR {
                continue
            } else if written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                var poller = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
                if poll(&poller, 1, maxStall) == 0 { return EAGAIN }
            } else {
                return written < 0 ? errno : EIO
            }
        }
        return nil
    }

    public static func writeAll(_ bytes: [UInt8], to descriptor: Int32) -> Int32? {
        bytes.withUnsafeBytes { writeAll($0, to: descriptor) }
    }
}

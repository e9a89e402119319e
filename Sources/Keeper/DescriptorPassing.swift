import Glibc

/// Passing open descriptors between processes over a Unix socket (SCM_RIGHTS): how the keeper
/// hands its listening sockets to each new worker, so that the sockets never close and a
/// client is never refused while workers change (HAProxy's `-x`, Envoy's hot restart).
///
/// Written on `sendmsg`/`recvmsg` directly: the ancillary-data macros (`CMSG_SPACE`,
/// `CMSG_DATA`) do not come through to Swift, and nothing in NIO passes descriptors on a
/// stream socket. Their arithmetic is reproduced here: the header and the data are each
/// aligned to `size_t`.
public enum DescriptorPassing {
    public struct Failure: Error, Equatable, CustomStringConvertible {
        public var operation: String
        public var code: Int32

        public var description: String { "\(operation): \(String(cString: strerror(code)))" }

        public init(operation: String, code: Int32) {
            self.operation = operation
            self.code = code
        }
    }

    /// The most descriptors one message carries (every listener plus the admin one).
    public static let maxDescriptors = 64

    private static func align(_ n: Int) -> Int {
        let unit = MemoryLayout<Int>.size
        return (n + unit - 1) & ~(unit - 1)
    }

    private static var headerSpace: Int { align(MemoryLayout<cmsghdr>.size) }

    /// Runs `body` with a message header whose one buffer is `data` and whose control area is
    /// `control` (none when empty); the two calls differ only in what they do with it.
    private static func withMessage(
        data: inout [UInt8], control: inout [UInt8], _ body: (inout msghdr, UnsafeMutableRawBufferPointer) -> Int
    ) -> Int {
        data.withUnsafeMutableBytes { dataBuffer in
            control.withUnsafeMutableBytes { controlBuffer in
                var iov = iovec(iov_base: dataBuffer.baseAddress, iov_len: dataBuffer.count)
                return withUnsafeMutablePointer(to: &iov) { iovPointer in
                    var message = msghdr()
                    message.msg_iov = iovPointer
                    message.msg_iovlen = 1
                    if controlBuffer.count > 0 {
                        message.msg_control = controlBuffer.baseAddress
                        message.msg_controllen = controlBuffer.count
                    }
                    return body(&message, controlBuffer)
                }
            }
        }
    }

    /// Sends `bytes` (at least one) with `descriptors` attached to the first of them. The rest of
    /// the bytes, if the socket took only part, follow with plain sends.
    public static func send(_ socket: Int32, bytes: [UInt8], descriptors: [Int32]) throws(Failure) {
        precondition(!bytes.isEmpty, "descriptors travel with at least one byte")
        precondition(descriptors.count <= maxDescriptors)
        let payloadSize = descriptors.count * MemoryLayout<Int32>.size
        var control = [UInt8](repeating: 0, count: descriptors.isEmpty ? 0 : headerSpace + align(payloadSize))
        var data = bytes
        let sent = withMessage(data: &data, control: &control) { message, controlBuffer in
            if let base = controlBuffer.baseAddress, !descriptors.isEmpty {
                let header = base.assumingMemoryBound(to: cmsghdr.self)
                header.pointee.cmsg_len = headerSpace + payloadSize
                header.pointee.cmsg_level = SOL_SOCKET
                header.pointee.cmsg_type = Int32(SCM_RIGHTS)
                let fds = (base + headerSpace).assumingMemoryBound(to: Int32.self)
                for (index, fd) in descriptors.enumerated() { fds[index] = fd }
            }
            var result: Int
            repeat {
                result = sendmsg(socket, &message, Int32(MSG_NOSIGNAL))
            } while result < 0 && errno == EINTR
            return result
        }
        guard sent >= 0 else { throw Failure(operation: "sendmsg", code: errno) }
        var offset = sent
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if written < 0 {
                if errno == EINTR { continue }
                throw Failure(operation: "send", code: errno)
            }
            offset += written
        }
    }

    /// Receives up to `maxBytes` and whatever descriptors came with them (close-on-exec set).
    /// Zero bytes: the other side closed.
    public static func receive(_ socket: Int32, maxBytes: Int = 65536) throws(Failure) -> (bytes: [UInt8], descriptors: [Int32]) {
        var data = [UInt8](repeating: 0, count: maxBytes)
        var control = [UInt8](repeating: 0, count: headerSpace + align(maxDescriptors * MemoryLayout<Int32>.size))
        var descriptors: [Int32] = []
        let received = withMessage(data: &data, control: &control) { message, controlBuffer in
            var result: Int
            repeat {
                result = recvmsg(socket, &message, Int32(MSG_CMSG_CLOEXEC))
            } while result < 0 && errno == EINTR
            guard result >= 0, let base = controlBuffer.baseAddress else { return result }
            // Walk the control messages (normally one).
            var offset = 0
            while offset + headerSpace <= message.msg_controllen {
                let header = (base + offset).assumingMemoryBound(to: cmsghdr.self).pointee
                guard header.cmsg_len >= headerSpace else { break }
                if header.cmsg_level == SOL_SOCKET, header.cmsg_type == Int32(SCM_RIGHTS) {
                    let count = (header.cmsg_len - headerSpace) / MemoryLayout<Int32>.size
                    let fds = (base + offset + headerSpace).assumingMemoryBound(to: Int32.self)
                    for index in 0..<count { descriptors.append(fds[index]) }
                }
                offset += align(header.cmsg_len)
            }
            return result
        }
        guard received >= 0 else { throw Failure(operation: "recvmsg", code: errno) }
        return (Array(data.prefix(received)), descriptors)
    }
}

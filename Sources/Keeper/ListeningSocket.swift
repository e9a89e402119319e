import Glibc

/// A listening TCP socket the keeper binds once and keeps for its whole life: workers come and
/// go and each gets a copy (`DescriptorPassing`), so the socket, and the connections waiting in
/// its backlog, outlive every worker.
public enum ListeningSocket {
    public struct Failure: Error, Equatable, CustomStringConvertible {
        public var address: String
        public var reason: String
        public var description: String { "cannot listen on \(address): \(reason)" }
    }

    /// Binds and listens on `host:port` (a name, an IPv4 or an IPv6 address; port 0 picks one)
    /// with SO_REUSEADDR, close-on-exec. Returns the descriptor.
    /// The queue of connections waiting to be accepted: it carries clients through a worker's
    /// restart or the hand-over between two workers.
    public static let backlog: Int32 = 1024

    public static func bind(host: String, port: Int, backlog: Int32 = backlog) throws(Failure) -> Int32 {
        let shown = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let first = list else {
            throw Failure(address: shown, reason: String(cString: gai_strerror(status)))
        }
        defer { freeaddrinfo(list) }
        var lastError: Int32 = 0
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let info = entry {
            entry = info.pointee.ai_next
            let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), info.pointee.ai_protocol)
            guard fd >= 0 else {
                lastError = errno
                continue
            }
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            if Glibc.bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0, listen(fd, backlog) == 0 {
                return fd
            }
            lastError = errno
            close(fd)
        }
        throw Failure(address: shown, reason: String(cString: strerror(lastError)))
    }

    /// Sets the backlog of a socket that listens already (SOMAXCONN caps it). A worker calls it
    /// after NIO took the socket over, since NIO listens again with its own default of 128.
    public static func restoreBacklog(_ fd: Int32) {
        _ = listen(fd, backlog)
    }
}

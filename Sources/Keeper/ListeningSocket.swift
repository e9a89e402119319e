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

    /// Binds and listens on a Unix socket at `path` with the given mode (0660: the gateway's
    /// user and group). A socket file left by a gateway that is gone (nothing accepts on it) is
    /// replaced; one that a running process accepts on, or a file that is not a socket, is an
    /// error rather than something to delete.
    public static func bindUnix(path: String, mode: mode_t = 0o660, backlog: Int32 = backlog) throws(Failure) -> Int32 {
        let shown = "unix:\(path)"
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else { throw Failure(address: shown, reason: "the path is longer than \(capacity - 1) bytes") }
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in bytes.enumerated() { buffer[index] = byte }
            buffer[bytes.count] = 0
        }
        var info = stat()
        if lstat(path, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFSOCK else {
                throw Failure(address: shown, reason: "a file that is not a socket is in the way")
            }
            if Self.accepts(&address) {
                throw Failure(address: shown, reason: "another process accepts connections on it (is a gateway running already?)")
            }
            unlink(path)
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(address: shown, reason: String(cString: strerror(errno))) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw Failure(address: shown, reason: reason)
        }
        // Before listen: nobody can connect before the mode is right.
        guard chmod(path, mode) == 0, listen(fd, backlog) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            unlink(path)
            throw Failure(address: shown, reason: reason)
        }
        return fd
    }

    /// Whether something accepts connections on the socket at `address`.
    private static func accepts(_ address: inout sockaddr_un) -> Bool {
        let probe = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard probe >= 0 else { return false }
        defer { close(probe) }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(probe, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        return result == 0
    }

    /// Sets the backlog of a socket that listens already (SOMAXCONN caps it). A worker calls it
    /// after NIO took the socket over, since NIO listens again with its own default of 128.
    public static func restoreBacklog(_ fd: Int32) {
        _ = listen(fd, backlog)
    }
}

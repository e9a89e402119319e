import Glibc

/// Listening sockets handed over by systemd socket activation: `$LISTEN_PID` names this
/// process, `$LISTEN_FDS` counts descriptors from 3 on, `$LISTEN_FDNAMES` optionally names them.
/// Each is matched to a configured listener by the address it is bound to, so the unit's
/// `ListenStream=` lines may come in any order.
public struct SocketActivation: Sendable {
    public struct Socket: Equatable, Sendable {
        public var fd: Int32
        public var name: String?
        /// `host:port` it is bound to (IPv6 in brackets), from getsockname.
        public var address: String
    }

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case badVariable(String, String)
        case notASocket(Int32)

        public var description: String {
            switch self {
            case .badVariable(let name, let value): "\(name)=\(value) is not what systemd sets"
            case .notASocket(let fd): "inherited descriptor \(fd) is not a bound listening socket"
            }
        }
    }

    public let sockets: [Socket]

    /// The sockets passed to `pid` (this process), or none when the variables are absent or name
    /// another process (they were inherited from a parent and are not ours).
    /// - Parameter firstDescriptor: 3 under systemd (`SD_LISTEN_FDS_START`); tests pass another.
    public init(environment: [String: String], pid: Int32 = getpid(), firstDescriptor: Int32 = 3) throws(Failure) {
        guard let pidText = environment["LISTEN_PID"], let countText = environment["LISTEN_FDS"] else {
            sockets = []
            return
        }
        guard let listenPID = Int32(pidText) else { throw .badVariable("LISTEN_PID", pidText) }
        guard listenPID == pid else {
            sockets = []
            return
        }
        guard let count = Int(countText), count >= 0, count <= 1024 else { throw .badVariable("LISTEN_FDS", countText) }
        let names = environment["LISTEN_FDNAMES"].map { $0.split(separator: ":", omittingEmptySubsequences: false).map(String.init) }
        var found: [Socket] = []
        for index in 0..<count {
            let fd = firstDescriptor + Int32(index)
            guard let address = Self.boundAddress(fd) else { throw .notASocket(fd) }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            found.append(Socket(fd: fd, name: names.flatMap { index < $0.count ? $0[index] : nil }, address: address))
        }
        sockets = found
    }

    /// The socket bound to `host:port` (as configured; `localhost` is not resolved).
    public func socket(for address: String) -> Socket? {
        sockets.first { $0.address == address }
    }

    /// `host:port` of a bound IPv4 or IPv6 socket; `unix:PATH` of a Unix one.
    static func boundAddress(_ fd: Int32) -> String? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) == 0 }
        }
        guard ok else { return nil }
        var host = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { address in
                    var inAddress = address.pointee.sin_addr
                    inet_ntop(AF_INET, &inAddress, &host, socklen_t(host.count))
                    return "\(String(cString: host)):\(UInt16(bigEndian: address.pointee.sin_port))"
                }
            }
        case AF_INET6:
            return withUnsafePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { address in
                    var inAddress = address.pointee.sin6_addr
                    inet_ntop(AF_INET6, &inAddress, &host, socklen_t(host.count))
                    return "[\(String(cString: host))]:\(UInt16(bigEndian: address.pointee.sin6_port))"
                }
            }
        case AF_UNIX:
            return withUnsafePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr_un.self, capacity: 1) { address in
                    withUnsafeBytes(of: address.pointee.sun_path) { path in
                        "unix:" + String(decoding: path.prefix { $0 != 0 }, as: UTF8.self)
                    }
                }
            }
        default:
            return nil
        }
    }
}

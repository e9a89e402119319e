#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Hands out ports of a deployment's range: one the supervisor is not using already and that
/// can be bound right now on the instances' host.
///
/// The bind check cannot reserve the port (the instance binds it later, and something else
/// could take it meanwhile); an instance that then fails to bind crashes and is respawned on
/// the next free port.
enum PortAllocator {
    /// `preferred` first (an instance keeps its port across restarts when it can), then the
    /// range in order. nil if every port is taken.
    static func pick(range: ClosedRange<Int>, inUse: Set<Int>, preferred: Int?, host: String) -> Int? {
        if let preferred, range.contains(preferred), !inUse.contains(preferred), canBind(host: host, port: preferred) {
            return preferred
        }
        for port in range where port != preferred && !inUse.contains(port) {
            if canBind(host: host, port: port) { return port }
        }
        return nil
    }

    /// Binds and closes at once. SO_REUSEADDR as servers set it, so connections of an earlier
    /// instance in TIME_WAIT do not make the port look taken.
    static func canBind(host: String, port: Int) -> Bool {
        let isV6 = host.contains(":")
        let fd = socket(isV6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if isV6 {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = in_port_t(UInt16(port).bigEndian)
            guard inet_pton(AF_INET6, host, &address.sin6_addr) == 1 else { return false }
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) == 0
                }
            }
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { return false }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }
}

import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A TCP port on 127.0.0.1 that was free a moment ago: bound to port 0, read back, closed.
///
/// Another process may take it before the caller binds it; tests live with that small race
/// because the alternative (passing listening sockets to children) is not what they test. A test
/// that needs a port to stay unused holds a `RefusingPort` instead.
func freePort() throws -> Int {
    try RefusingPort().port  // released as soon as it is read
}

/// A port on 127.0.0.1 where nothing listens, and nothing can start to while this is alive.
///
/// The socket is bound but never listens, so a connect gets a reset (connection refused), as it
/// would from a port that is simply free. Unlike a port from `freePort()`, nobody else can take
/// it meanwhile: a parallel test's bind to port 0 skips it, and so does the choice of a local
/// port for an outgoing connection. (A port from `freePort()` was once handed to another test's
/// server while a "dead backend" test was still using it, and that test saw the other server's
/// answers.)
final class RefusingPort: Sendable {
    let port: Int
    private let fd: Int32

    init() throws {
        #if canImport(Darwin)
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #else
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #endif
        guard fd >= 0 else { throw TestSupportError("socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_in()
        #if canImport(Darwin)
        address.sin_len = UInt8(MemoryLayout<sockaddr_in>.size)
        #endif
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                bind(fd, socketAddress, length) == 0 && getsockname(fd, socketAddress, &length) == 0
            }
        }
        guard bound else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw TestSupportError("bind 127.0.0.1:0: \(reason)")
        }
        self.fd = fd
        self.port = Int(UInt16(bigEndian: address.sin_port))
    }

    /// Starts listening: connections are then completed by the kernel (a TCP probe passes) but
    /// never accepted by anyone.
    func startListening() {
        _ = listen(fd, 16)
    }

    deinit { close(fd) }
}

/// Waits until something accepts TCP connections on `host:port`, trying every 20 ms.
///
/// This is how a test knows a server it started is ready, instead of sleeping and hoping.
func waitForPort(_ port: Int, host: String = "127.0.0.1", timeout: Duration = .seconds(10)) async throws {
    let deadline = ContinuousClock.now + timeout
    var lastError: (any Error)?
    while ContinuousClock.now < deadline {
        do {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.seconds(1))
                .connect(host: host, port: port)
                .get()
            try? await channel.close()
            return
        } catch {
            lastError = error
        }
        try await Task.sleep(for: .milliseconds(20))
    }
    throw TestSupportError(
        "nothing accepted connections on \(host):\(port) within \(timeout); last error: \(String(describing: lastError))"
    )
}

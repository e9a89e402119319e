import Foundation
import Glibc
import Testing

@testable import Keeper

@Suite struct SystemdTests {
    /// A datagram socket bound where systemd would listen for notifications.
    final class NotifySocket {
        let fd: Int32
        let path: String

        init(abstract: Bool) throws {
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            let name = "gateway-notify-test-\(getpid())-\(UUID().uuidString.prefix(8))"
            path = abstract ? "@" + name : FileManager.default.temporaryDirectory.appendingPathComponent(name).path
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            var bytes = Array(path.utf8)
            if abstract { bytes[0] = 0 }
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
            let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (abstract ? 0 : 1))
            let bound = withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
            }
            guard bound == 0 else { throw DescriptorPassing.Failure(operation: "bind", code: errno) }
            var timeout = timeval(tv_sec: 2, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }

        func receive() -> String? {
            var buffer = [UInt8](repeating: 0, count: 4096)
            let count = recv(fd, &buffer, buffer.count, 0)
            return count > 0 ? String(decoding: buffer.prefix(count), as: UTF8.self) : nil
        }

        deinit {
            close(fd)
            if !path.hasPrefix("@") { unlink(path) }
        }
    }

    @Test(arguments: [false, true])
    func notificationsReachTheNotifySocket(abstract: Bool) throws {
        let listener = try NotifySocket(abstract: abstract)
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": listener.path])
        #expect(notifier.send(SystemdNotifier.ready(status: "serving, worker 1", mainPID: 4242)))
        #expect(listener.receive() == "READY=1\nSTATUS=serving, worker 1\nMAINPID=4242\n")
        #expect(notifier.send(SystemdNotifier.reloading(status: "upgrading", monotonicMicroseconds: 123)))
        #expect(listener.receive() == "RELOADING=1\nSTATUS=upgrading\nMONOTONIC_USEC=123\n")
        #expect(notifier.send(SystemdNotifier.stopping(status: "draining")))
        #expect(listener.receive() == "STOPPING=1\nSTATUS=draining\n")
    }

    @Test func withoutNotifySocketNothingIsSent() {
        #expect(!SystemdNotifier(environment: [:]).send("READY=1\n"))
        #expect(SystemdNotifier.monotonicMicroseconds() > 0)
    }

    /// Two bound listening sockets placed at consecutive descriptors, as systemd passes them, are
    /// found by the addresses they are bound to, with their names.
    @Test func inheritedListenersAreMatchedByAddress() throws {
        var fds: [Int32] = []
        var ports: [Int] = []
        for _ in 0..<2 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let ok = withUnsafeMutablePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 && listen(fd, 4) == 0
                }
            }
            #expect(ok)
            fds.append(fd)
            ports.append(Int(UInt16(bigEndian: address.sin_port)))
        }
        // Three consecutive unused descriptors at the top of the limit (dup2 onto one in use
        // would close another test's socket under it when tests run in parallel).
        var limit = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        let top = Int32(min(limit.rlim_cur, 65_536)) - 3
        let first = try #require(stride(from: top, through: 100, by: -1).first { candidate in
            (0..<3).allSatisfy { fcntl(candidate + $0, F_GETFD) == -1 }
        })
        #expect(dup2(fds[0], first) == first)
        #expect(dup2(fds[1], first + 1) == first + 1)
        defer { for fd in fds + [first, first + 1] { close(fd) } }

        let environment = ["LISTEN_PID": String(getpid()), "LISTEN_FDS": "2", "LISTEN_FDNAMES": "web:admin"]
        let activation = try SocketActivation(environment: environment, firstDescriptor: first)
        #expect(activation.sockets.map(\.fd) == [first, first + 1])
        #expect(activation.socket(for: "127.0.0.1:\(ports[1])")?.name == "admin")
        #expect(activation.socket(for: "127.0.0.1:\(ports[0])")?.fd == first)

        // Variables meant for another process (inherited from a parent) are not ours.
        #expect(try SocketActivation(environment: ["LISTEN_PID": "1", "LISTEN_FDS": "2"], firstDescriptor: first).sockets.isEmpty)
        #expect(throws: SocketActivation.Failure.badVariable("LISTEN_FDS", "two")) {
            try SocketActivation(environment: ["LISTEN_PID": String(getpid()), "LISTEN_FDS": "two"], firstDescriptor: first)
        }
        #expect(throws: SocketActivation.Failure.notASocket(first + 2)) {
            try SocketActivation(environment: ["LISTEN_PID": String(getpid()), "LISTEN_FDS": "3"], firstDescriptor: first)
        }
    }
}

import Glibc

/// `sd_notify` for `Type=notify` services, written out (libsystemd is not a dependency): one
/// datagram of `KEY=value` lines to the Unix socket named in `$NOTIFY_SOCKET`, a path or, with a
/// leading `@`, an abstract name. Without `$NOTIFY_SOCKET` it does nothing, as `sd_notify` does.
public struct SystemdNotifier: Sendable {
    public let socketPath: String?

    public init(environment: [String: String]) {
        let path = environment["NOTIFY_SOCKET"]
        socketPath = (path?.isEmpty ?? true) ? nil : path
    }

    /// The keeper serves (a worker accepts): `READY=1`, with the keeper as `MAINPID`.
    public static func ready(status: String, mainPID: Int32) -> String {
        "READY=1\nSTATUS=\(status)\nMAINPID=\(mainPID)\n"
    }

    /// A reload or an upgrade began; `monotonicMicroseconds` is CLOCK_MONOTONIC, as systemd
    /// wants it with `RELOADING=1`.
    public static func reloading(status: String, monotonicMicroseconds: UInt64) -> String {
        "RELOADING=1\nSTATUS=\(status)\nMONOTONIC_USEC=\(monotonicMicroseconds)\n"
    }

    public static func stopping(status: String) -> String {
        "STOPPING=1\nSTATUS=\(status)\n"
    }

    public static func status(_ text: String) -> String {
        "STATUS=\(text)\n"
    }

    /// CLOCK_MONOTONIC in microseconds.
    public static func monotonicMicroseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1_000
    }

    /// Sends `message`; false (and nothing else happens) when there is no socket or it fails:
    /// a notification is never worth stopping the gateway for.
    @discardableResult
    public func send(_ message: String) -> Bool {
        guard let socketPath else { return false }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var pathBytes = Array(socketPath.utf8)
        if pathBytes.first == UInt8(ascii: "@") { pathBytes[0] = 0 }  // abstract namespace
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard pathBytes.count < capacity else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + pathBytes.count + (pathBytes.first == 0 ? 0 : 1))
        let bytes = Array(message.utf8)
        let sent = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                sendto(fd, bytes, bytes.count, Int32(MSG_NOSIGNAL), socketAddress, length)
            }
        }
        return sent == bytes.count
    }
}

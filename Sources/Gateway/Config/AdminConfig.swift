/// The admin side: where it listens, who may use it and how.
struct AdminConfig: Sendable, Equatable {
    var listen: HostPort
    /// A connection with no request in progress is closed after this long without a byte.
    var idleTimeout: Duration = .seconds(60)
    /// From a request's first byte to its last; a slower client gets 408 and is closed.
    var requestTimeout: Duration = .seconds(10)
    /// Admin connections open at once; the ones over it are closed as soon as they are accepted,
    /// so the admin listener can never take the descriptors the proxy needs.
    var maxConnections = 64
    /// A Unix socket (absolute path) for local operators: mode 0660, and who connects is known
    /// from the kernel (SO_PEERCRED) rather than from a token.
    var socket: String?
    /// Users whose socket connections are `admin` besides the gateway's own user; every other
    /// local user who can open the socket is a `viewer`.
    var socketAdmins: [SocketAdmin] = []
    /// Token holders for the TCP listener (and the socket, when they present a token).
    var users: [AdminUser] = []
    /// `/metrics` without a token, for a Prometheus that cannot send one.
    var publicMetrics = false
    /// Host names (besides the listener's own address) that a browser may call the TCP
    /// listener by; any other `Host` is refused, against DNS rebinding.
    var hosts: [String] = []
    /// How long a browser's sign-in lasts.
    var sessionTimeout: Duration = .seconds(8 * 3600)
}

/// `admin.users[]`: a name, the SHA-256 of its token, and a level.
struct AdminUser: Sendable, Equatable {
    var name: String
    var tokenDigest: TokenDigest
    var level: AdminLevel
}

/// `admin.socket_admins[]`: a local user, by name or uid, resolved when the file is read.
struct SocketAdmin: Sendable, Equatable {
    var uid: UInt32
    /// As written in the file (a name, or the uid as text).
    var name: String
}

/// Who sent an admin request, as the audit log and the status page name them.
struct AdminPrincipal: Sendable, Equatable {
    enum Credential: String, Sendable, Equatable {
        /// `Authorization: Bearer`.
        case token
        /// The browser's session cookie (signed in with a token before).
        case session
        /// A connection on the Unix socket, known by its peer credentials.
        case socket
    }

    /// A configured user's name, or for the socket the local user (`root`, `uid 1001`).
    var name: String
    var level: AdminLevel
    var credential: Credential
}

/// Where an admin request came from: the TCP listener (the client's address) or the Unix
/// socket (the connecting process, as the kernel reports it).
enum AdminPeer: Sendable, Equatable, CustomStringConvertible {
    case tcp(host: String, port: Int)
    case unix(PeerCredentials)

    var description: String {
        switch self {
        case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unix(let peer): "unix socket, pid \(peer.pid), uid \(peer.uid)"
        }
    }
}

/// A Unix-socket peer: the process that connected, from SO_PEERCRED.
struct PeerCredentials: Sendable, Equatable {
    var pid: Int32
    var uid: UInt32
    var gid: UInt32
}

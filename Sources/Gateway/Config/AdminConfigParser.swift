import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Reads the `admin:` section: listener, socket, users and their levels.
enum AdminConfigParser {
    static let keys = [
        "listen", "idle_timeout", "request_timeout", "max_connections", "socket", "socket_admins", "users", "public_metrics", "hosts",
        "session_timeout",
    ]

    /// The longest Unix socket path the kernel takes (`sun_path` holds 108 bytes with the NUL).
    static let maxSocketPathBytes = 107

    static func parse(_ node: ConfigNode, baseDirectory: String) throws(ConfigError) -> (config: AdminConfig, listenNode: ConfigNode?) {
        let map = try node.mapping(known: keys)
        var admin = AdminConfig(listen: HostPort(host: "127.0.0.1", port: 9901))
        let listenNode = map.optional("listen")
        if let listenNode { admin.listen = try listenNode.hostPort(allowAnyPort: true) }
        if let value = map.optional("idle_timeout") { admin.idleTimeout = try value.duration(allowZero: false) }
        if let value = map.optional("request_timeout") { admin.requestTimeout = try value.duration(allowZero: false) }
        if let value = map.optional("max_connections") {
            admin.maxConnections = try value.positiveInt(max: ConfigBounds.adminConnections)
        }
        if let value = map.optional("socket") { admin.socket = try socketPath(value, baseDirectory: baseDirectory) }
        if let value = map.optional("socket_admins") { admin.socketAdmins = try socketAdmins(value) }
        if let value = map.optional("users") { admin.users = try users(value, baseDirectory: baseDirectory) }
        if let value = map.optional("public_metrics") { admin.publicMetrics = try value.bool() }
        if let value = map.optional("hosts") { admin.hosts = try hosts(value) }
        if let value = map.optional("session_timeout") { admin.sessionTimeout = try value.duration(allowZero: false) }
        return (admin, listenNode)
    }

    private static func socketPath(_ node: ConfigNode, baseDirectory: String) throws(ConfigError) -> String {
        let text = try node.string(expected: "a path for the Unix socket, such as /run/gateway/admin.sock")
        guard !text.isEmpty else { throw node.error("the socket path is empty") }
        let path = text.hasPrefix("/") ? text : ProcessConfigParser.join(baseDirectory, text)
        guard path.utf8.count <= maxSocketPathBytes else {
            throw node.error("the socket path is \(path.utf8.count) bytes long; a Unix socket path may have at most \(maxSocketPathBytes)")
        }
        return path
    }

    private static func socketAdmins(_ node: ConfigNode) throws(ConfigError) -> [SocketAdmin] {
        var admins: [SocketAdmin] = []
        for item in try node.list() {
            let text = try item.string(expected: "a user name or uid")
            let uid: UInt32
            if let number = UInt32(text) {
                uid = number
            } else if let found = Self.uid(ofUser: text) {
                uid = found
            } else {
                throw item.error("no local user \(ConfigNode.quoted(text)) (give a user name that exists here, or a uid)")
            }
            if !admins.contains(where: { $0.uid == uid }) { admins.append(SocketAdmin(uid: uid, name: text)) }
        }
        return admins
    }

    static func uid(ofUser name: String) -> UInt32? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16 * 1024)
        guard getpwnam_r(name, &entry, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        return entry.pw_uid
    }

    private static func users(_ node: ConfigNode, baseDirectory: String) throws(ConfigError) -> [AdminUser] {
        var users: [AdminUser] = []
        for item in try node.list() {
            let map = try item.mapping(known: ["name", "token_sha256", "token_file", "level"])
            let nameNode = try map.required("name")
            let name = try nameNode.string(expected: "a user name")
            guard AdminUserName.isValid(name) else {
                throw nameNode.error("a user name has 1 to 64 letters, digits, '.', '_', '-' or '@', got \(nameNode.shown)")
            }
            if users.contains(where: { $0.name == name }) { throw nameNode.error("user \(ConfigNode.quoted(name)) is listed twice") }
            let levelNode = try map.required("level")
            let levelText = try levelNode.string(expected: "a level")
            guard let level = AdminLevel(rawValue: levelText) else {
                throw levelNode.error("expected one of \(AdminLevel.names), got \(levelNode.shown)")
            }
            let digest: TokenDigest
            switch (map.optional("token_sha256"), map.optional("token_file")) {
            case (let hashNode?, nil):
                let text = try hashNode.string(expected: "the token's SHA-256 in hex")
                guard let parsed = TokenDigest(hex: text) else {
                    throw hashNode.error(
                        "expected the token's SHA-256 as 64 hex digits (`gateway admin-token` prints it), got \(text.count) characters")
                }
                digest = parsed
            case (nil, let fileNode?):
                digest = try Self.digest(fromFile: fileNode, baseDirectory: baseDirectory)
            case (nil, nil):
                throw item.error("user \(ConfigNode.quoted(name)) needs token_sha256 or token_file")
            case (_?, _?):
                throw item.error("user \(ConfigNode.quoted(name)) has both token_sha256 and token_file; give one")
            }
            if let other = users.first(where: { $0.tokenDigest == digest }) {
                throw item.error("users \(ConfigNode.quoted(other.name)) and \(ConfigNode.quoted(name)) have the same token; give each its own")
            }
            users.append(AdminUser(name: name, tokenDigest: digest, level: level))
        }
        return users
    }

    /// A file that holds the hex SHA-256 (surrounding white space ignored), so the hash can be
    /// kept outside a configuration that is checked in.
    private static func digest(fromFile node: ConfigNode, baseDirectory: String) throws(ConfigError) -> TokenDigest {
        let text = try node.string(expected: "a file path")
        let path = text.hasPrefix("/") ? text : ProcessConfigParser.join(baseDirectory, text)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw node.error("cannot read the token file \(ConfigNode.quoted(path))")
        }
        let content = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let digest = TokenDigest(hex: content) else {
            throw node.error("the token file \(ConfigNode.quoted(path)) must hold the token's SHA-256 as 64 hex digits (not the token itself)")
        }
        return digest
    }

    private static func hosts(_ node: ConfigNode) throws(ConfigError) -> [String] {
        var hosts: [String] = []
        for item in try node.list() {
            let text = try item.string(expected: "a host name")
            guard let host = AdminHostCheck.normalizeName(text) else {
                throw item.error("expected a host name such as gateway.internal, got \(item.shown)")
            }
            if !hosts.contains(host) { hosts.append(host) }
        }
        return hosts
    }
}

/// The names `admin.users[].name` may have: they show in the audit log and in messages.
enum AdminUserName {
    static func isValid(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 64
            && name.utf8.allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                    UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "@"):
                    true
                default: false
                }
            }
    }
}

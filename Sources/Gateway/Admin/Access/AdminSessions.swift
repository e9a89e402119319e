import Foundation

/// Browser sessions of the status page: a signed cookie (`HttpOnly; SameSite=Strict`) and a CSRF
/// token the page sends back on every state-changing request.
///
/// The cookie carries the user's name and its expiry, signed with HMAC-SHA-256 over those and
/// the digest of the user's current token. The key comes from the keeper, the same for every
/// worker, so a session outlives an upgrade; a token rotated or a user removed by a reload
/// breaks the signature at once. Signing out revokes the cookie in this worker (a browser drops
/// it too). Pure: the caller passes the time.
struct AdminSessions: Sendable {
    static let cookieName = "gateway_session"
    /// The environment variable the keeper hands the key to its workers in (hex).
    static let keyVariable = "GATEWAY_SESSION_KEY"
    /// Revoked cookies remembered at once; past it the earliest to expire is forgotten first.
    static let maxRevoked = 10_000

    private let key: [UInt8]
    private var revoked: [String: Date] = [:]

    init(key: [UInt8]) {
        precondition(key.count >= 16, "a session key needs at least 128 bits")
        self.key = key
    }

    /// The key from `$GATEWAY_SESSION_KEY` (taken out of the environment, so no child inherits
    /// it), or a new random one for a gateway without a keeper.
    static func keyFromEnvironment() -> [UInt8] {
        defer { unsetenv(keyVariable) }
        if let text = getenv(keyVariable).map({ String(cString: $0) }), let digest = TokenDigest(hex: text) {
            return digest.bytes
        }
        return TokenDigest.randomBytes(32)
    }

    /// A cookie value for `user` valid until `now + lifetime`, and its CSRF token.
    func open(user: AdminUser, lifetime: Duration, now: Date) -> (cookie: String, csrfToken: String) {
        let expires = Int64(now.timeIntervalSince1970) + lifetime.components.seconds
        let name = TokenDigest.base64URL(Array(user.name.utf8))
        let tag = signature(name: name, expires: expires, token: user.tokenDigest)
        let cookie = "v1.\(name).\(expires).\(TokenDigest.base64URL(tag))"
        return (cookie, csrfToken(for: cookie))
    }

    /// The user a cookie stands for, when it is well signed for that user's current token, not
    /// expired and not revoked; and its CSRF token.
    func verify(_ cookie: String, users: [AdminUser], now: Date) -> (user: AdminUser, csrfToken: String)? {
        let parts = cookie.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "v1", let expires = Int64(parts[2]), Double(expires) > now.timeIntervalSince1970,
            let nameBytes = Self.base64URLDecode(String(parts[1])),
            let user = users.first(where: { $0.name == String(decoding: nameBytes, as: UTF8.self) }),
            let tag = Self.base64URLDecode(String(parts[3])),
            TokenDigest.equal(tag, signature(name: String(parts[1]), expires: expires, token: user.tokenDigest)),
            revoked[TokenDigest(of: cookie).hex] == nil
        else { return nil }
        return (user, csrfToken(for: cookie))
    }

    mutating func close(_ cookie: String, now: Date) {
        let parts = cookie.split(separator: ".")
        guard parts.count == 4, let expires = Int64(parts[2]) else { return }
        revoked = revoked.filter { $0.value.timeIntervalSince1970 > now.timeIntervalSince1970 }
        if revoked.count >= Self.maxRevoked, let first = revoked.min(by: { $0.value < $1.value }) { revoked[first.key] = nil }
        revoked[TokenDigest(of: cookie).hex] = Date(timeIntervalSince1970: Double(expires))
    }

    private func signature(name: String, expires: Int64, token: TokenDigest) -> [UInt8] {
        TokenDigest.hmac(key: key, "session|v1|\(name)|\(expires)|\(token.hex)")
    }

    private func csrfToken(for cookie: String) -> String {
        TokenDigest.base64URL(TokenDigest.hmac(key: key, "csrf|\(cookie)"))
    }

    static func base64URLDecode(_ text: String) -> [UInt8]? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        return Data(base64Encoded: base64).map { Array($0) }
    }
}

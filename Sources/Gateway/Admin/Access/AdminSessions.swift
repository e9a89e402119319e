/// Browser sessions of the status page: a random id in an `HttpOnly; SameSite=Strict` cookie,
/// and a CSRF token the page sends back on every state-changing request.
///
/// A session stands for the token it was opened with: it is looked up by the token's digest in
/// the current users on every request, so a user removed or re-levelled by a reload loses or
/// changes its sessions at once. Sessions live in the worker's memory; an upgrade asks people
/// to sign in again. Pure: the caller passes the time.
struct AdminSessions: Sendable {
    struct Session: Sendable, Equatable {
        var tokenDigest: TokenDigest
        var csrfToken: String
        var expires: ContinuousClock.Instant
    }

    /// Sessions open at once; past it the one that expires first is closed.
    static let maxSessions = 1_000
    static let cookieName = "gateway_session"

    private var sessions: [String: Session] = [:]

    /// Opens a session; returns its id (for the cookie) and CSRF token.
    mutating func open(tokenDigest: TokenDigest, lifetime: Duration, now: ContinuousClock.Instant) -> (id: String, csrfToken: String) {
        sessions = sessions.filter { $0.value.expires > now }
        if sessions.count >= Self.maxSessions, let first = sessions.min(by: { $0.value.expires < $1.value.expires }) {
            sessions[first.key] = nil
        }
        let id = TokenDigest.base64URL(TokenDigest.randomBytes(32))
        let csrf = TokenDigest.base64URL(TokenDigest.randomBytes(24))
        // Stored under the id's digest: a lookup then compares digests of 256 random bits,
        // which tells a timing observer nothing about a live id.
        sessions[TokenDigest(of: id).hex] = Session(tokenDigest: tokenDigest, csrfToken: csrf, expires: now + lifetime)
        return (id, csrf)
    }

    /// The live session with this id, if any.
    func session(id: String, now: ContinuousClock.Instant) -> Session? {
        guard let session = sessions[TokenDigest(of: id).hex], session.expires > now else { return nil }
        return session
    }

    mutating func close(id: String) {
        sessions[TokenDigest(of: id).hex] = nil
    }
}

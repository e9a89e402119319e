import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Decides who may do what on the admin API: authentication (bearer token, session cookie, or
/// the Unix socket's peer credentials), the browser checks (Host, Origin, CSRF), the limit on
/// failed attempts, and the level each endpoint needs (`AdminAccessPolicy`).
///
/// Deny by default: on TCP every endpoint but `/health` and `/ready` (and `/metrics` when made
/// public) needs credentials, also when no users are configured.
final class AdminAccess: Sendable {
    /// What the configuration says, replaced as a whole by a reload.
    struct Settings: Sendable, Equatable {
        var users: [AdminUser]
        var publicMetrics: Bool
        var hostNames: [String]
        var socketAdmins: [UInt32]
        var sessionTimeout: Duration

        init(_ config: AdminConfig) {
            users = config.users
            publicMetrics = config.publicMetrics
            hostNames = config.hosts
            socketAdmins = config.socketAdmins.map(\.uid)
            sessionTimeout = config.sessionTimeout
        }
    }

    enum Decision: Sendable {
        /// Go ahead. `principal` is nil for an open endpoint called without credentials.
        case allowed(AdminPrincipal?, csrfToken: String?)
        /// Refused; `principal` when it was known (a level too low), for the audit line.
        case denied(AdminResponse, principal: AdminPrincipal? = nil)
    }

    private struct State: Sendable {
        var settings: Settings
        var sessions: AdminSessions
        var failures = AdminFailureLimiter()
    }

    private let state: Mutex<State>
    private let listenHost: String
    /// The TCP listener's port as bound (the configured one may be 0).
    private let boundPort: Mutex<Int>
    private var port: Int { boundPort.withLock { $0 } }
    private let logger: Logger
    /// The gateway's own user: always `admin` on its socket.
    private let ownUID = getuid()

    /// - Parameter sessionKey: signs the page's session cookies; the keeper gives every worker
    ///   the same one (`AdminSessions.keyFromEnvironment`), so sign-ins survive an upgrade.
    init(
        config: AdminConfig, boundPort: Int? = nil, sessionKey: [UInt8] = TokenDigest.randomBytes(32),
        logger: Logger = Logger(label: "gateway.admin")
    ) {
        self.logger = logger
        state = Mutex(State(settings: Settings(config), sessions: AdminSessions(key: sessionKey)))
        listenHost = config.listen.host
        self.boundPort = Mutex(boundPort ?? config.listen.port)
    }

    /// The listener is bound: a configured port 0 became this one, which `Host` must name.
    func listening(onPort port: Int) {
        boundPort.withLock { $0 = port }
    }

    /// A reload: users, levels, names and timeouts change at once; sessions of a user that is
    /// gone stop working on their next request.
    func update(_ config: AdminConfig) {
        state.withLock { $0.settings = Settings(config) }
    }

    var settings: Settings { state.withLock { $0.settings } }

    /// - Parameters:
    ///   - now: for the limit on failed attempts;
    ///   - wallClock: for session expiry (cookies cross processes, so they carry wall-clock time).
    func authorize(_ request: AdminRequest, now: ContinuousClock.Instant = .now, wallClock: Date = Date()) -> Decision {
        let settings = self.settings
        let requirement = AdminAccessPolicy.requirement(method: request.method, path: request.path, publicMetrics: settings.publicMetrics)
        if case .open = requirement, request.path != "/session" {
            return .allowed(nil, csrfToken: nil)
        }
        switch request.peer {
        case .unix(let peer):
            return authorizeSocket(request, peer: peer, requirement: requirement, settings: settings)
        case .tcp(let host, _):
            return authorizeTCP(request, address: host, requirement: requirement, settings: settings, now: now, wallClock: wallClock)
        }
    }

    // MARK: Unix socket

    private func authorizeSocket(
        _ request: AdminRequest, peer: PeerCredentials, requirement: AdminAccessPolicy.Requirement, settings: Settings
    ) -> Decision {
        let principal: AdminPrincipal
        if let authorization = request.header("authorization") {
            // A token on the socket speaks for its user (a CI job running as another uid).
            guard let user = Self.user(forAuthorization: authorization, in: settings.users) else {
                return .denied(Self.unauthorized("the bearer token is not valid for any admin user", path: request.path))
            }
            principal = AdminPrincipal(name: user.name, level: user.level, credential: .token)
        } else {
            let isAdmin = peer.uid == ownUID || settings.socketAdmins.contains(peer.uid)
            principal = AdminPrincipal(name: Self.userName(uid: peer.uid), level: isAdmin ? .admin : .viewer, credential: .socket)
        }
        if request.path == "/session" {
            return .denied(.error(400, "sign-in is for browsers on the TCP listener; the socket knows who you are"))
        }
        return check(principal, requirement, csrfToken: nil)
    }

    // MARK: TCP

    private func authorizeTCP(
        _ request: AdminRequest, address: String, requirement: AdminAccessPolicy.Requirement, settings: Settings,
        now: ContinuousClock.Instant, wallClock: Date
    ) -> Decision {
        let hostCheck = AdminHostCheck(listenHost: listenHost, port: port, names: settings.hostNames)
        guard let host = request.header("host"), request.headerCount("host") == 1 else {
            return .denied(.error(400, "the request needs exactly one Host header"))
        }
        guard hostCheck.accepts(host: host) else {
            return .denied(
                .error(
                    403,
                    "Host '\(host)' is not an address of this admin listener (port \(port)); call it by its address, "
                        + "or add the name to admin.hosts"))
        }
        let stateChanging = AdminAccessPolicy.isStateChanging(method: request.method)
        let origin = request.header("origin")
        if let origin, stateChanging, !AdminHostCheck.isSameOrigin(origin, host: host) {
            return .denied(.error(403, "cross-origin request refused: Origin '\(origin)' is not http://\(host)"))
        }
        if let wait = state.withLock({ $0.failures.blocked(address, now: now) }) {
            var response = AdminResponse.error(
                429, "too many failed sign-in attempts from \(address); try again in \(Int(wait.components.seconds) + 1) s")
            response.headers.append(("retry-after", String(Int(wait.components.seconds) + 1)))
            return .denied(response)
        }
        if request.path == "/session" {
            // The sign-in itself is answered by `signIn`; here only the checks above apply.
            return .allowed(nil, csrfToken: nil)
        }

        if let authorization = request.header("authorization") {
            guard let user = Self.user(forAuthorization: authorization, in: settings.users) else {
                recordFailure(address, now: now)
                return .denied(Self.unauthorized("the bearer token is not valid for any admin user", path: request.path))
            }
            return check(AdminPrincipal(name: user.name, level: user.level, credential: .token), requirement, csrfToken: nil)
        }
        if let id = Self.cookie(AdminSessions.cookieName, in: request.header("cookie")) {
            let found = state.withLock { $0.sessions.verify(id, users: settings.users, now: wallClock) }
            guard let (user, csrf) = found else {
                recordFailure(address, now: now)
                return .denied(Self.unauthorized("the session has expired or was closed; sign in again", path: request.path))
            }
            if stateChanging {
                // A browser: it must say where the request comes from, and prove it is the page.
                guard origin != nil else {
                    return .denied(.error(403, "a state-changing request with a session cookie needs an Origin header"))
                }
                guard let presented = request.header("x-csrf-token"), TokenDigest(of: presented).matches(TokenDigest(of: csrf)) else {
                    return .denied(.error(403, "missing or wrong X-CSRF-Token for this session"))
                }
            }
            return check(AdminPrincipal(name: user.name, level: user.level, credential: .session), requirement, csrfToken: csrf)
        }
        if settings.users.isEmpty {
            return .denied(
                Self.unauthorized(
                    "the admin API on TCP needs a token and no admin.users are configured: make one with "
                        + "`gateway admin-token --name NAME --level LEVEL`, add its line under admin.users and reload, "
                        + "or use the admin socket", path: request.path, presented: false))
        }
        return .denied(Self.unauthorized("this endpoint needs a bearer token (Authorization: Bearer TOKEN)", path: request.path, presented: false))
    }

    private func recordFailure(_ address: String, now: ContinuousClock.Instant) {
        let blocked = state.withLock { $0.failures.recordFailure(address, now: now) }
        if blocked {
            logger.warning(
                "admin sign-in attempts blocked",
                metadata: [
                    "client": "\(address)", "failures": "\(AdminFailureLimiter.defaultLimit)",
                    "for": "\(AdminFailureLimiter.defaultWindow)",
                ])
        }
    }

    private func check(_ principal: AdminPrincipal, _ requirement: AdminAccessPolicy.Requirement, csrfToken: String?) -> Decision {
        if case .level(let needed) = requirement, principal.level < needed {
            return .denied(
                .error(403, "this needs level \(needed.rawValue); \(principal.name) has \(principal.level.rawValue)"), principal: principal)
        }
        return .allowed(principal, csrfToken: csrfToken)
    }

    // MARK: Sign-in

    /// `POST /session` with `token=...` (a form) or a bearer token: opens a session and sets
    /// its cookie. Called after `authorize` allowed it (Host, Origin and the failure limit).
    /// Returns who signed in (for the audit line) beside the answer.
    func signIn(_ request: AdminRequest, now: ContinuousClock.Instant = .now, wallClock: Date = Date()) -> (
        response: AdminResponse, principal: AdminPrincipal?
    ) {
        guard case .tcp(let address, _) = request.peer else {
            return (.error(400, "sign-in is for browsers on the TCP listener"), nil)
        }
        let settings = self.settings
        var token: String?
        if let authorization = request.header("authorization"), let bearer = Self.bearer(authorization) {
            token = bearer
        } else {
            token = AdminRequest.formFields(request.body)["token"]
        }
        guard let token, !token.isEmpty else {
            return (.html(400, StatusPage.signIn(message: "Enter a token.")), nil)
        }
        let digest = TokenDigest(of: token)
        guard let user = settings.users.first(where: { $0.tokenDigest.matches(digest) }) else {
            recordFailure(address, now: now)
            return (.html(401, StatusPage.signIn(message: "That token is not valid.")), nil)
        }
        let opened = state.withLock { $0.sessions.open(user: user, lifetime: settings.sessionTimeout, now: wallClock) }
        var response = AdminResponse(status: 303, contentType: "text/plain; charset=utf-8", body: Array("signed in\n".utf8))
        response.headers.append(("location", "/"))
        response.headers.append((
            "set-cookie",
            "\(AdminSessions.cookieName)=\(opened.cookie); HttpOnly; SameSite=Strict; Path=/; Max-Age=\(settings.sessionTimeout.components.seconds)"
        ))
        return (response, AdminPrincipal(name: user.name, level: user.level, credential: .session))
    }

    /// `POST /session/end`: closes the session and clears the cookie.
    func signOut(_ request: AdminRequest) -> AdminResponse {
        if let id = Self.cookie(AdminSessions.cookieName, in: request.header("cookie")) {
            state.withLock { $0.sessions.close(id, now: Date()) }
        }
        var response = AdminResponse(status: 303, contentType: "text/plain; charset=utf-8", body: Array("signed out\n".utf8))
        response.headers.append(("location", "/"))
        response.headers.append(("set-cookie", "\(AdminSessions.cookieName)=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"))
        return response
    }

    // MARK: Helpers

    /// 401 with `WWW-Authenticate`; for the page, the sign-in form instead of JSON (200 when
    /// nothing was presented: a person who just opened it).
    static func unauthorized(_ message: String, path: String, presented: Bool = true) -> AdminResponse {
        var response: AdminResponse
        if path == "/" {
            response = .html(presented ? 401 : 200, StatusPage.signIn(message: presented ? message : nil))
        } else {
            response = .error(401, message)
        }
        response.headers.append(("www-authenticate", "Bearer realm=\"gateway admin\""))
        return response
    }

    static func bearer(_ authorization: String) -> String? {
        let parts = authorization.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let token = parts[1].trimmingCharacters(in: .whitespaces)
        return token.isEmpty ? nil : token
    }

    /// The user whose token this is; every user is compared (in constant time each), so the
    /// answer takes as long whichever matches.
    static func user(forAuthorization authorization: String, in users: [AdminUser]) -> AdminUser? {
        guard let token = bearer(authorization) else { return nil }
        let digest = TokenDigest(of: token)
        var found: AdminUser?
        for user in users where user.tokenDigest.matches(digest) { found = user }
        return found
    }

    static func cookie(_ name: String, in header: String?) -> String? {
        guard let header else { return nil }
        for pair in header.split(separator: ";") {
            let trimmed = pair.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix(name + "=") { return String(trimmed.dropFirst(name.count + 1)) }
        }
        return nil
    }

    static func userName(uid: UInt32) -> String {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16 * 1024)
        if getpwuid_r(uid, &entry, &buffer, buffer.count, &result) == 0, result != nil, let name = entry.pw_name {
            return String(cString: name)
        }
        return "uid \(uid)"
    }
}

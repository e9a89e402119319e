import Foundation
import Synchronization
import RequestControl
import Testing

@testable import Gateway

/// Users, levels and the browser checks, decided by `AdminAccess` in front of every endpoint.
@Suite struct AdminAccessTests {
    static let tokens: [AdminLevel: String] = [.viewer: "gw_viewer-token", .operator: "gw_operator-token", .admin: "gw_admin-token"]

    static func config(publicMetrics: Bool = false, users: Bool = true) -> AdminConfig {
        var config = AdminConfig(listen: HostPort(host: "127.0.0.1", port: 9901))
        config.publicMetrics = publicMetrics
        if users {
            config.users = AdminLevel.allCases.map { AdminUser(name: "\($0.rawValue)-user", tokenDigest: TokenDigest(of: tokens[$0]!), level: $0) }
        }
        return config
    }

    static func api(_ config: AdminConfig = config()) throws -> AdminAPI {
        let gateway = try ConfigLoader.parse(
            yaml: "listen: 127.0.0.1:8080\ndeployments:\n  - {name: shop, backends: [127.0.0.1:9]}\n", source: "test.yaml")
        let controller = RequestController(configuration: BackendMembership.requestControlConfiguration(gateway))
        var api = AdminAPI(controller: controller, defaultSuspendTimeout: .seconds(1))
        api.accessControl = AdminAccess(config: config)
        return api
    }

    static func tcp(_ method: String, _ uri: String, token: String?, headers: [(String, String)] = [], from client: String = "127.0.0.1")
        -> AdminRequest
    {
        var fields = [(name: "host", value: "127.0.0.1:9901")]
        if let token { fields.append((name: "authorization", value: "Bearer \(token)")) }
        fields += headers.map { (name: $0.0, value: $0.1) }
        return AdminRequest(method: method, uri: uri, headers: fields, peer: .tcp(host: client, port: 40000))
    }

    /// Every endpoint with the level it needs. The calls that are allowed are made so that they
    /// fail after the check (an unknown deployment, a bad parameter), so nothing acts.
    static let endpoints: [(method: String, uri: String, needs: AdminLevel?)] = [
        ("GET", "/health", nil),
        ("GET", "/ready", nil),
        ("GET", "/metrics", .viewer),
        ("GET", "/stats", .viewer),
        ("GET", "/processes", .viewer),
        ("GET", "/", .viewer),
        ("GET", "/deployments/shop/instances/1/logs", .viewer),
        ("POST", "/suspend?deployment=nosuch", .operator),
        ("POST", "/resume?deployment=nosuch", .operator),
        ("POST", "/reload", .operator),
        ("POST", "/deployments/nosuch/restart", .operator),
        ("POST", "/deployments/nosuch/stop", .operator),
        ("POST", "/deployments/nosuch/start", .operator),
        ("POST", "/deployments/nosuch/instances/1/restart", .operator),
        ("POST", "/shutdown?timeout=bad", .admin),
        ("POST", "/upgrade?binary=relative", .admin),
    ]

    @Test func everyLevelAgainstEveryEndpoint() async throws {
        let api = try Self.api()
        for (index, endpoint) in Self.endpoints.enumerated() {
            // No credentials: open endpoints answer, the rest are 401.
            let anonymous = await api.handle(Self.tcp(endpoint.method, endpoint.uri, token: nil))
            if endpoint.needs == nil {
                #expect(anonymous.status == 200, "\(endpoint.uri) without a token")
            } else if endpoint.uri == "/" {
                #expect(anonymous.status == 200 && String(decoding: anonymous.body, as: UTF8.self).contains("action=\"/session\""), "the sign-in form")
            } else {
                #expect(anonymous.status == 401, "\(endpoint.method) \(endpoint.uri) without a token: \(anonymous.status)")
            }
            // From an address of its own: ten wrong tokens from one address would block it.
            let wrong = await api.handle(Self.tcp(endpoint.method, endpoint.uri, token: "gw_not-a-token", from: "127.0.1.\(index)"))
            #expect(wrong.status == (endpoint.needs == nil ? 200 : 401), "\(endpoint.uri) with a wrong token")
            for level in AdminLevel.allCases {
                let response = await api.handle(Self.tcp(endpoint.method, endpoint.uri, token: Self.tokens[level]))
                if let needed = endpoint.needs, level < needed {
                    #expect(response.status == 403, "\(level) on \(endpoint.method) \(endpoint.uri): \(response.status)")
                    #expect(AdminAPIParameterTests.error(response) == "this needs level \(needed.rawValue); \(level.rawValue)-user has \(level.rawValue)")
                } else {
                    #expect(![401, 403].contains(response.status), "\(level) on \(endpoint.method) \(endpoint.uri): \(response.status) \(AdminAPIParameterTests.error(response))")
                }
            }
        }
        // Every state-changing call above, allowed or not, left exactly one audit entry, with
        // the user it was made as (when one was known) and its path.
        let audit = api.events.subscribe().recent.filter { $0.type == "audit" }
        let calls = Self.endpoints.filter { $0.method == "POST" }
        #expect(audit.count == calls.count * (2 + AdminLevel.allCases.count))
        for endpoint in calls {
            let path = String(endpoint.uri.split(separator: "?")[0])
            let users = audit.filter { $0.fields["path"] == .string(path) }.compactMap { entry -> String? in
                if case .string(let user) = entry.fields["user"] { return user }
                return nil
            }
            #expect(users.sorted() == ["-", "-", "admin-user", "operator-user", "viewer-user"], "\(path): \(users)")
        }
    }

    @Test func publicMetricsNeedsNoToken() async throws {
        let api = try Self.api(Self.config(publicMetrics: true))
        #expect(await api.handle(Self.tcp("GET", "/metrics", token: nil)).status == 200)
        #expect(await api.handle(Self.tcp("GET", "/stats", token: nil)).status == 401)
    }

    @Test func withoutUsersTCPServesOnlyHealthAndReadyAndSaysHowToAddOne() async throws {
        let api = try Self.api(Self.config(users: false))
        #expect(await api.handle(Self.tcp("GET", "/health", token: nil)).status == 200)
        let stats = await api.handle(Self.tcp("GET", "/stats", token: nil))
        #expect(stats.status == 401)
        #expect(AdminAPIParameterTests.error(stats).contains("gateway admin-token --name NAME --level LEVEL"))
        #expect(stats.headers.contains { $0.0 == "www-authenticate" })
    }

    @Test func socketPeersAreAdminsWhenTheyAreTheGatewaysUserOrListedAndViewersOtherwise() async throws {
        var config = Self.config()
        config.socketAdmins = [SocketAdmin(uid: 4242, name: "4242")]
        let api = try Self.api(config)
        func socket(_ uid: UInt32, _ method: String, _ uri: String) -> AdminRequest {
            AdminRequest(method: method, uri: uri, peer: .unix(PeerCredentials(pid: 1, uid: uid, gid: 0)))
        }
        // No Host check on the socket, no token needed.
        #expect(await api.handle(socket(getuid(), "POST", "/shutdown?timeout=bad")).status == 400)
        #expect(await api.handle(socket(4242, "POST", "/shutdown?timeout=bad")).status == 400)
        let stranger = UInt32(getuid() == 4343 ? 4444 : 4343)
        #expect(await api.handle(socket(stranger, "GET", "/stats")).status == 200)
        let refused = await api.handle(socket(stranger, "POST", "/resume?deployment=shop"))
        #expect(refused.status == 403)
        #expect(AdminAPIParameterTests.error(refused).hasPrefix("this needs level operator; uid \(stranger) has viewer"))
    }

    @Test func hostMustBeTheListenersAddressOrAConfiguredName() async throws {
        var config = Self.config()
        config.hosts = ["gateway.internal"]
        let api = try Self.api(config)
        let token = Self.tokens[.admin]!
        for (host, status) in [("127.0.0.1:9901", 200), ("localhost:9901", 200), ("gateway.internal:9901", 200), ("evil.example:9901", 403),
            ("127.0.0.1:9902", 403), ("127.0.0.1", 403)]
        {
            let request = AdminRequest(
                method: "GET", uri: "/stats", headers: [(name: "host", value: host), (name: "authorization", value: "Bearer \(token)")],
                peer: .tcp(host: "127.0.0.1", port: 1))
            #expect(await api.handle(request).status == status, "Host \(host)")
        }
        // Health stays open to probes whatever they call the gateway.
        let probe = AdminRequest(method: "GET", uri: "/health", headers: [(name: "host", value: "10.0.0.1:9901")], peer: .tcp(host: "10.0.0.9", port: 1))
        #expect(await api.handle(probe).status == 200)
    }

    @Test func crossOriginStateChangesAreRefused() async throws {
        let api = try Self.api()
        let token = Self.tokens[.admin]!
        let cross = await api.handle(Self.tcp("POST", "/resume?deployment=shop", token: token, headers: [("origin", "http://evil.example")]))
        #expect(cross.status == 403)
        #expect(AdminAPIParameterTests.error(cross).contains("cross-origin"))
        let same = await api.handle(Self.tcp("POST", "/resume?deployment=shop", token: token, headers: [("origin", "http://127.0.0.1:9901")]))
        #expect(same.status == 200)
    }

    @Test func signInGivesAnHttpOnlyStrictCookieAndTheSessionNeedsOriginAndCSRFToAct() async throws {
        let api = try Self.api()
        let signIn = AdminRequest(
            method: "POST", uri: "/session", body: Array("token=\(Self.tokens[.operator]!)".utf8),
            headers: [(name: "host", value: "127.0.0.1:9901"), (name: "origin", value: "http://127.0.0.1:9901"),
                (name: "content-type", value: "application/x-www-form-urlencoded")],
            peer: .tcp(host: "127.0.0.1", port: 1))
        let answer = await api.handle(signIn)
        #expect(answer.status == 303)
        let cookie = try #require(answer.headers.first { $0.0 == "set-cookie" }?.1)
        #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Max-Age=28800"))
        let session = String(cookie.split(separator: ";")[0])
        func request(_ method: String, _ uri: String, _ extra: [(String, String)]) -> AdminRequest {
            AdminRequest(
                method: method, uri: uri, headers: [(name: "host", value: "127.0.0.1:9901"), (name: "cookie", value: session)] + extra.map { (name: $0.0, value: $0.1) },
                peer: .tcp(host: "127.0.0.1", port: 1))
        }
        let signedIn = api.events.subscribe().recent.last { $0.type == "audit" }
        #expect(signedIn?.fields["user"] == .string("operator-user") && signedIn?.fields["path"] == .string("/session"))
        let page = await api.handle(request("GET", "/", []))
        #expect(page.status == 200)
        let html = String(decoding: page.body, as: UTF8.self)
        let csrf = try #require(html.firstMatch(of: /name="gateway-csrf" content="([^"]+)"/)?.1)
        #expect(await api.handle(request("GET", "/stats", [])).status == 200)
        let noOrigin = await api.handle(request("POST", "/resume?deployment=shop", [("x-csrf-token", String(csrf))]))
        #expect(noOrigin.status == 403)
        let noToken = await api.handle(request("POST", "/resume?deployment=shop", [("origin", "http://127.0.0.1:9901")]))
        #expect(noToken.status == 403)
        #expect(AdminAPIParameterTests.error(noToken).contains("X-CSRF-Token"))
        let wrongToken = await api.handle(request("POST", "/resume?deployment=shop", [("origin", "http://127.0.0.1:9901"), ("x-csrf-token", "nope")]))
        #expect(wrongToken.status == 403)
        let ok = await api.handle(request("POST", "/resume?deployment=shop", [("origin", "http://127.0.0.1:9901"), ("x-csrf-token", String(csrf))]))
        #expect(ok.status == 200)
        // The operator's session still cannot do what needs admin.
        let shutdown = await api.handle(request("POST", "/shutdown?timeout=bad", [("origin", "http://127.0.0.1:9901"), ("x-csrf-token", String(csrf))]))
        #expect(shutdown.status == 403)
        // Signed out, the cookie is worth nothing.
        #expect(await api.handle(request("POST", "/session/end", [("origin", "http://127.0.0.1:9901"), ("x-csrf-token", String(csrf))])).status == 303)
        #expect(await api.handle(request("GET", "/stats", [])).status == 401)
    }

    @Test func aReloadThatRemovesAUserEndsItsSessions() async throws {
        let api = try Self.api()
        let now = ContinuousClock.now
        let signIn = Self.tcp("POST", "/session", token: Self.tokens[.viewer])
        let cookie = try #require(api.accessControl.signIn(signIn, now: now).response.headers.first { $0.0 == "set-cookie" }?.1)
        let session = String(cookie.split(separator: ";")[0])
        let read = AdminRequest(
            method: "GET", uri: "/stats", headers: [(name: "host", value: "127.0.0.1:9901"), (name: "cookie", value: session)],
            peer: .tcp(host: "127.0.0.1", port: 1))
        #expect(await api.handle(read).status == 200)
        var config = Self.config()
        config.users.removeAll { $0.level == .viewer }
        api.accessControl.update(config)
        #expect(await api.handle(read).status == 401)
    }

    @Test func sessionCookiesAreSignedExpireAndOutliveTheWorkerThatMadeThem() throws {
        let key = TokenDigest.randomBytes(32)
        let user = AdminUser(name: "ci", tokenDigest: TokenDigest(of: "gw_a"), level: .viewer)
        var sessions = AdminSessions(key: key)
        let now = Date()
        let opened = sessions.open(user: user, lifetime: .seconds(60), now: now)
        #expect(sessions.verify(opened.cookie, users: [user], now: now.addingTimeInterval(59))?.user == user)
        #expect(sessions.verify(opened.cookie, users: [user], now: now.addingTimeInterval(60)) == nil, "expired")
        // Another worker with the same key (the keeper's) accepts it, with the same CSRF token.
        let next = AdminSessions(key: key)
        #expect(next.verify(opened.cookie, users: [user], now: now)?.csrfToken == opened.csrfToken)
        #expect(AdminSessions(key: TokenDigest.randomBytes(32)).verify(opened.cookie, users: [user], now: now) == nil, "another key")
        // A rotated token breaks it; so does any change to the cookie.
        let rotated = AdminUser(name: "ci", tokenDigest: TokenDigest(of: "gw_b"), level: .viewer)
        #expect(sessions.verify(opened.cookie, users: [rotated], now: now) == nil)
        var forged = opened.cookie.split(separator: ".").map(String.init)
        forged[2] = String(Int64(forged[2])! + 3600)
        #expect(sessions.verify(forged.joined(separator: "."), users: [user], now: now) == nil)
        sessions.close(opened.cookie, now: now)
        #expect(sessions.verify(opened.cookie, users: [user], now: now) == nil, "signed out")
    }

    @Test func failedAttemptsAreLimitedPerAddress() async throws {
        let api = try Self.api()
        for _ in 0..<AdminFailureLimiter.defaultLimit {
            #expect(await api.handle(Self.tcp("GET", "/stats", token: "gw_guess")).status == 401)
        }
        let blocked = await api.handle(Self.tcp("GET", "/stats", token: Self.tokens[.admin]))
        #expect(blocked.status == 429)
        #expect(blocked.headers.contains { $0.0 == "retry-after" })
        // Another address is not held back.
        let other = AdminRequest(
            method: "GET", uri: "/stats",
            headers: [(name: "host", value: "127.0.0.1:9901"), (name: "authorization", value: "Bearer \(Self.tokens[.admin]!)")],
            peer: .tcp(host: "127.0.0.2", port: 1))
        #expect(await api.handle(other).status == 200)
    }

    @Test func limiterWindowEnds() {
        var limiter = AdminFailureLimiter(limit: 2, window: .seconds(10))
        let now = ContinuousClock.now
        limiter.recordFailure("a", now: now)
        #expect(limiter.blocked("a", now: now) == nil)
        limiter.recordFailure("a", now: now + .seconds(1))
        #expect(limiter.blocked("a", now: now + .seconds(1)) == .seconds(9))
        #expect(limiter.blocked("a", now: now + .seconds(10)) == nil)
    }

    @Test func tokenDigestsAreSHA256AndCompareWhole() throws {
        // SHA-256("abc"), FIPS 180-2's example.
        #expect(TokenDigest(of: "abc").hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(TokenDigest(hex: "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD") == TokenDigest(of: "abc"))
        #expect(TokenDigest(hex: "ba78") == nil)
        #expect(TokenDigest(hex: String(repeating: "g", count: 64)) == nil)
        #expect(TokenDigest(of: "abc").matches(TokenDigest(of: "abc")))
        #expect(!TokenDigest(of: "abc").matches(TokenDigest(of: "abd")))
        let first = TokenDigest.newToken()
        #expect(first.hasPrefix("gw_") && first.count == 46)
        #expect(first != TokenDigest.newToken())
    }

    @Test func auditLineForEveryStateChangingCall() async throws {
        let api = try Self.api()
        // The audit line goes to stderr; the `audit` event it also publishes carries the same
        // fields (the line itself is checked below).
        _ = await api.handle(Self.tcp("POST", "/resume?deployment=shop", token: Self.tokens[.operator]))
        _ = await api.handle(Self.tcp("POST", "/shutdown?timeout=1", token: Self.tokens[.viewer]))
        _ = await api.handle(Self.tcp("GET", "/stats", token: Self.tokens[.viewer]))
        let audit = api.events.subscribe().recent.filter { $0.type == "audit" }
        #expect(audit.count == 2)
        #expect(audit[0].fields["user"] == .string("operator-user"))
        #expect(audit[0].fields["path"] == .string("/resume"))
        #expect(audit[0].fields["params"] == .object(["deployment": .string("shop")]))
        #expect(audit[0].fields["status"] == .int(200))
        #expect(audit[0].fields["result"] == .string("ok"))
        #expect(audit[0].fields["from"] == .string("127.0.0.1:40000"))
        #expect(audit[1].fields["user"] == .string("viewer-user"))
        #expect(audit[1].fields["status"] == .int(403))
        #expect(audit[1].fields["result"] == .string("this needs level admin; viewer-user has viewer"))
    }

    @Test func auditLineIsOneJSONObject() throws {
        let lines = LockedLines()
        let audit = AdminAudit(events: GatewayEventLog(), write: { lines.append($0) })
        let request = Self.tcp("POST", "/deployments/shop/restart?token=query-token-value", token: "secret-token-value")
        audit.record(
            principal: AdminPrincipal(name: "ci", level: .operator, credential: .token), request: request,
            response: .json(200, ["ok": true]), duration: .milliseconds(12))
        let line = try #require(lines.all.first)
        #expect(!line.contains("\n") && !line.contains("secret-token-value") && !line.contains("query-token-value"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let entry = try #require(object["audit"] as? [String: Any])
        #expect(entry["user"] as? String == "ci")
        #expect(entry["credential"] as? String == "token")
        #expect(entry["path"] as? String == "/deployments/shop/restart")
        #expect(entry["duration_ms"] as? Double == 12)
        #expect(entry["time"] is String)
    }
}

final class LockedLines: Sendable {
    private let lines = Mutex<[String]>([])
    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }
}

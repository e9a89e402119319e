import Foundation
import RequestControl

/// One admin request, already read whole (admin bodies are small).
struct AdminRequest: Sendable {
    var method: String
    var path: String
    var query: [String: String]
    var body: [UInt8]
    /// Header fields as received (names lower-cased), for credentials and the browser checks.
    var headers: [(name: String, value: String)]
    var peer: AdminPeer

    /// - Parameter peer: the server always says; the default, a process of the gateway's own
    ///   user on the socket, is for tests of the endpoints themselves.
    init(
        method: String, uri: String, body: [UInt8] = [], headers: [(name: String, value: String)] = [],
        peer: AdminPeer = .unix(PeerCredentials(pid: getpid(), uid: getuid(), gid: getgid()))
    ) {
        self.method = method
        self.body = body
        self.headers = headers.map { (name: $0.name.lowercased(), value: $0.value) }
        self.peer = peer
        let parts = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        path = String(parts.first ?? "/")
        query = parts.count > 1 ? Self.formFields(Array(parts[1].utf8)) : [:]
    }

    /// The first value of a header field (name in lower case).
    func header(_ name: String) -> String? {
        headers.first { $0.name == name }?.value
    }

    func headerCount(_ name: String) -> Int {
        headers.reduce(0) { $0 + ($1.name == name ? 1 : 0) }
    }

    /// `a=1&b=x%20y` (a query, or a form body) as a dictionary; `+` is a space in both.
    static func formFields(_ bytes: [UInt8]) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in String(decoding: bytes, as: UTF8.self).split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ text: Substring) -> String {
                let spaced = text.replacingOccurrences(of: "+", with: " ")
                return spaced.removingPercentEncoding ?? spaced
            }
            fields[decode(kv[0])] = kv.count > 1 ? decode(kv[1]) : ""
        }
        return fields
    }
}

struct AdminResponse: Sendable {
    var status: Int
    var contentType: String
    var body: [UInt8]
    /// More header fields (cookies, `Location`, `WWW-Authenticate`, `Retry-After`).
    var headers: [(String, String)] = []
    /// Runs once the answer is written (or could not be): for an action whose answer must get
    /// out before the action can take the connection away, as a shutdown does.
    var afterWrite: (@Sendable () -> Void)? = nil
    /// A body that goes on after the head (server-sent events): each element is written and
    /// flushed as it comes, and the answer ends when the stream does.
    var stream: AsyncStream<[UInt8]>? = nil

    static func json(_ status: Int, _ value: some Encodable) -> AdminResponse {
        AdminResponse(status: status, contentType: "application/json", body: Array(AdminJSONEncoding.encode(value, pretty: true)) + [UInt8(ascii: "\n")])
    }

    static func error(_ status: Int, _ message: String) -> AdminResponse {
        json(status, ["error": message])
    }

    static func html(_ status: Int, _ document: String) -> AdminResponse {
        var response = AdminResponse(status: status, contentType: "text/html; charset=utf-8", body: Array(document.utf8))
        // The page is the operator's: never framed by another site, never cached.
        response.headers.append(("cache-control", "no-store"))
        response.headers.append(("x-frame-options", "DENY"))
        response.headers.append(("content-security-policy", "default-src 'self'; script-src 'unsafe-inline' 'self'; style-src 'unsafe-inline' 'self'; img-src 'self' data:; frame-ancestors 'none'"))
        return response
    }
}

/// The admin API's JSON: sorted keys, slashes as they are.
enum AdminJSONEncoding {
    static func encode(_ value: some Encodable, pretty: Bool) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(value)) ?? Data("{}".utf8)
    }
}

/// The admin endpoints, independent of the HTTP server that carries them.
///
/// `/health` and `/ready` answer from RequestControl's state without touching the proxy, so they
/// keep answering while the gateway drains.
struct AdminAPI: Sendable {
    let controller: RequestController
    /// The timeout a suspend uses when the call gives none (the configured shutdown timeout).
    let defaultSuspendTimeout: Duration
    /// Processes, reload and shutdown; nil in tests of the RequestControl endpoints alone.
    var operations: GatewayOperations? = nil
    /// How requests arrived (HTTP/1.1, HTTP/2, TLS).
    var traffic = TrafficCounters()
    var tls = TLSCounters()
    /// The admin listener's own connections, for `/stats`; nil when no listener counts them.
    var connections: AdminConnections? = nil
    /// Who may do what; the default (no users, nothing public) serves only the gateway's own
    /// user on the socket, which is what tests of the endpoints call as.
    var accessControl = AdminAccess(config: AdminConfig(listen: HostPort(host: "127.0.0.1", port: 9901)), boundPort: 9901)
    /// What happened, for `/events` and the page.
    var events = GatewayEventLog()
    /// The periodic `state` of `/events`, shared by every page that is open.
    var stateCache = StateDocumentCache()
    /// `/fleet`: the fleet as etcd has it; nil without `membership`.
    var fleet: FleetDirectory? = nil

    /// Authorizes, answers, and writes the audit line of a state-changing call.
    func handle(_ request: AdminRequest) async -> AdminResponse {
        let started = ContinuousClock.now
        var principal: AdminPrincipal?
        let response: AdminResponse
        switch accessControl.authorize(request) {
        case .denied(let refusal, let who):
            principal = who
            response = refusal
        case .allowed(_, _) where request.method == "POST" && request.path == "/session":
            // The sign-in names its user only once the token is checked.
            (response, principal) = accessControl.signIn(request)
        case .allowed(let who, let csrfToken):
            principal = who
            response = await route(request, principal: who, csrfToken: csrfToken)
        }
        if AdminAccessPolicy.isStateChanging(method: request.method) {
            AdminAudit(events: events).record(principal: principal, request: request, response: response, duration: .now - started)
        }
        return response
    }

    private func route(_ request: AdminRequest, principal: AdminPrincipal?, csrfToken: String?) async -> AdminResponse {
        switch (request.method, request.path) {
        case ("GET", "/"), ("HEAD", "/"):
            guard let principal else { return .html(200, StatusPage.signIn(message: nil)) }
            return .html(200, StatusPage.page(user: principal.name, level: principal.level, csrfToken: csrfToken ?? ""))
        case ("POST", "/session/end"):
            return accessControl.signOut(request)
        case ("GET", "/events"):
            return await eventStream(request)
        case ("GET", "/health"), ("HEAD", "/health"):
            return .json(200, healthAnswer())
        case ("GET", "/ready"), ("HEAD", "/ready"):
            let state = gatewayState
            return .json(state == .running ? 200 : 503, ReadyAnswer(ready: state == .running, state: state.rawValue))
        case ("GET", "/stats"):
            return .json(200, statsDocument())
        case ("GET", "/metrics"):
            return AdminResponse(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: MetricsExporter.render(controller.snapshot(), traffic: traffic.snapshot(), tls: tls.snapshot()))
        case ("POST", "/suspend"):
            return await suspend(request)
        case ("POST", "/resume"):
            return await resume(request)
        case ("GET", "/processes"):
            return await processes()
        case ("GET", "/fleet"):
            guard let fleet else { return .error(404, "no fleet: this gateway has no `membership` (membership.etcd) in its configuration") }
            do {
                return .json(200, try await fleet.document())
            } catch {
                return .error(503, "etcd did not answer: \(error)")
            }
        case ("POST", "/reload"):
            return await reload()
        case ("POST", "/shutdown"):
            return await shutdown(request)
        case ("POST", "/upgrade"):
            return await upgrade(request)
        case (_, _) where request.path.hasPrefix("/deployments/"):
            return await deploymentOperation(request)
        case (_, "/health"), (_, "/ready"), (_, "/stats"), (_, "/metrics"), (_, "/suspend"), (_, "/resume"),
            (_, "/processes"), (_, "/reload"), (_, "/shutdown"), (_, "/upgrade"), (_, "/"), (_, "/session"), (_, "/session/end"),
            (_, "/events"), (_, "/fleet"):
            return .error(405, "method \(request.method) not allowed on \(request.path)")
        default:
            return .error(404, "no admin endpoint \(request.path)")
        }
    }

    func healthAnswer() -> HealthAnswer {
        let hello = operations?.keeper?.hello
        return HealthAnswer(
            status: "ok", state: gatewayState.rawValue, pid: getpid(), keeperPID: hello?.keeperPID,
            workerGeneration: hello?.generation, version: GatewayVersion.version)
    }

    func statsDocument() -> StatsDocument {
        var document = StatsDocument(controller.snapshot(), traffic: traffic.snapshot(), tls: tls.snapshot(), admin: connections?.snapshot())
        if let log = operations?.accessLog, log.format != nil { document.access_log = .init(dropped_lines: log.dropped) }
        return document
    }

    private var gatewayState: SuspendState {
        (try? controller.state(of: .gateway)) ?? .running
    }

    struct HealthAnswer: Encodable {
        var status: String
        var state: String
        /// The worker that answers.
        var pid: Int32
        var keeperPID: Int32?
        var workerGeneration: Int?
        var version: String

        enum CodingKeys: String, CodingKey {
            case status, state, pid, version
            case keeperPID = "keeper_pid"
            case workerGeneration = "worker_generation"
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(status, forKey: .status)
            try container.encode(state, forKey: .state)
            try container.encode(pid, forKey: .pid)
            // null, not absent, without a keeper: the fields are always there to read.
            try container.encode(keeperPID, forKey: .keeperPID)
            try container.encode(workerGeneration, forKey: .workerGeneration)
            try container.encode(version, forKey: .version)
        }
    }

    struct ReadyAnswer: Encodable {
        var ready: Bool
        var state: String
    }

    struct SuspendAnswer: Encodable {
        var scope: String
        var drained: Bool
        var active: Int
        var state: String
        var cancelled: Bool
    }

    private func suspend(_ request: AdminRequest) async -> AdminResponse {
        let scope: SuspendScope
        switch await resolveScope(from: request.query, allowing: ["timeout"]) {
        case .success(let s): scope = s
        case .failure(let error): return .error(error.status, error.message)
        }
        // The configured shutdown timeout, as the last reload left it.
        var timeout = SuspendTimeout.after(await operations?.membership.config.shutdownTimeout ?? defaultSuspendTimeout)
        if let raw = request.query["timeout"] {
            // Any negative number means for ever; a positive one is bounded like every duration.
            guard let seconds = Double(raw), seconds.isFinite, seconds <= Double(ConfigBounds.maxDurationSeconds) else {
                return .error(
                    400,
                    "timeout must be a number of seconds up to \(ConfigBounds.maxDurationSeconds) (365 days; "
                        + "0 = do not wait, <0 = wait for ever), got '\(raw)'")
            }
            timeout = SuspendTimeout(seconds: seconds)
        }
        do {
            let result = try await controller.suspend(scope, timeout: timeout)
            return .json(200, SuspendAnswer(scope: scope.description, drained: result.drained, active: result.active, state: result.state.rawValue, cancelled: result.cancelled))
        } catch {
            return .error(404, error.description)
        }
    }

    private func resume(_ request: AdminRequest) async -> AdminResponse {
        let scope: SuspendScope
        switch await resolveScope(from: request.query, allowing: []) {
        case .success(let s): scope = s
        case .failure(let error): return .error(error.status, error.message)
        }
        do {
            let previous = try controller.state(of: scope)
            let state = try await controller.resume(scope)
            return .json(200, ["scope": scope.description, "state": state.rawValue, "previous_state": previous.rawValue])
        } catch {
            return .error(404, error.description)
        }
    }

    struct ParameterError: Error {
        var message: String
        var status = 400
    }

    /// `instance=N` (with `deployment`) names the backend of a supervised instance by the name
    /// operators know, whatever port it has now.
    private func resolveScope(from query: [String: String], allowing extra: Set<String>) async -> Result<SuspendScope, ParameterError> {
        guard let instance = query["instance"] else { return Self.scope(from: query, allowing: extra) }
        var rest = query
        rest["instance"] = nil
        guard rest["backend"] == nil, rest["entry_point"] == nil else {
            return .failure(ParameterError(message: "give instance, backend or entry_point, not several"))
        }
        guard let deployment = query["deployment"], !deployment.isEmpty else {
            return .failure(ParameterError(message: "instance needs a deployment parameter"))
        }
        guard let index = Int(instance), index > 0 else {
            return .failure(ParameterError(message: "instance must be an instance number such as 2, got '\(instance)'"))
        }
        guard let operations else {
            return .failure(ParameterError(message: "the gateway supervises no processes", status: 404))
        }
        let rows = await operations.supervisor.status()
        guard let row = rows.first(where: { $0.deployment == deployment && $0.index == index && $0.pid != nil }),
            let address = row.address
        else {
            return .failure(ParameterError(message: "no running instance \(deployment)#\(index)", status: 404))
        }
        rest["backend"] = address
        return Self.scope(from: rest, allowing: extra)
    }

    /// `deployment`, `entry_point` (needs `deployment`) and `backend` (needs `deployment`) name
    /// the scope; none of them means the whole gateway.
    static func scope(from query: [String: String], allowing extra: Set<String>) -> Result<SuspendScope, ParameterError> {
        let known = Set(["deployment", "entry_point", "backend"]).union(extra)
        if let unknown = query.keys.sorted().first(where: { !known.contains($0) }) {
            return .failure(ParameterError(message: "unknown parameter '\(unknown)'; expected one of \(known.sorted().joined(separator: ", "))"))
        }
        let deployment = query["deployment"]
        if let d = deployment, d.isEmpty { return .failure(ParameterError(message: "deployment must not be empty")) }
        switch (deployment, query["entry_point"], query["backend"]) {
        case (nil, nil, nil):
            return .success(.gateway)
        case (let d?, nil, nil):
            return .success(.deployment(d))
        case (let d?, let e?, nil):
            return .success(.entryPoint(deployment: d, entryPoint: e))
        case (let d?, nil, let b?):
            return .success(.backend(deployment: d, address: b))
        case (nil, _, _):
            return .failure(ParameterError(message: "entry_point and backend need a deployment parameter"))
        case (_?, _?, _?):
            return .failure(ParameterError(message: "give entry_point or backend, not both"))
        }
    }
}

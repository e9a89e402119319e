import Supervisor

/// The gateway's configuration as loaded from YAML and validated.
///
/// Plain values only: the parser (`ConfigLoader`) turns a file into this, the rest of the
/// gateway reads it. Every duration is a `Duration`; every address a `HostPort`.
struct GatewayConfig: Sendable, Equatable {
    /// The client-facing listeners; never empty. The first one is the one logged as `listen`.
    var listeners: [ListenerConfig]
    var admin: AdminConfig
    var limits: LimitsConfig
    /// How long a graceful shutdown waits for in-flight requests before it gives up.
    var shutdownTimeout: Duration
    /// Event-loop threads; `nil` means one per core.
    var threads: Int?
    var timeouts: TimeoutsConfig
    var http2 = HTTP2Config()
    /// `Upgrade` protocols tunnelled to the backends (lower-case); any other upgrade request is
    /// answered over HTTP/1.1 without it.
    var upgradeProtocols = ["websocket"]
    var deployments: [DeploymentConfig]
    /// One line per request, stream and tunnel; nil: no access log.
    var accessLog: AccessLogConfig?
    /// Backends registered in etcd; nil: none.
    var membership: MembershipConfig?
}

/// HTTP/2 limits announced in the server's SETTINGS and enforced on each connection.
struct HTTP2Config: Sendable, Equatable {
    var maxConcurrentStreams = 128
    /// Each stream's receive window: how much of one upload may wait in the gateway.
    var initialWindowBytes = 65_535
    var maxFrameBytes = 16_384
    /// How long responses may wait on a client that keeps its flow-control window at zero.
    var stallTimeout: Duration = .seconds(10)

    /// The loader keeps each value within HTTP/2's 31 bits; the conversions clamp all the same,
    /// so a value set some other way cannot trap on a client's first connection.
    var session: H2Session.Settings {
        var settings = H2Session.Settings()
        settings.maxConcurrentStreams = UInt32(clamping: maxConcurrentStreams)
        settings.initialWindowSize = UInt32(clamping: initialWindowBytes)
        settings.maxFrameSize = UInt32(clamping: maxFrameBytes)
        // Room for every stream's window, so one slow upload cannot hold the others.
        let (windows, overflow) = maxConcurrentStreams.multipliedReportingOverflow(by: initialWindowBytes)
        settings.connectionWindowSize = overflow ? .max : UInt32(clamping: max(1 << 20, windows))
        return settings
    }
}

extension GatewayConfig {
    /// The first listener's address (the single `listen:` of a one-listener configuration).
    var listen: HostPort { listeners[0].listen }
}

/// One client-facing socket: which protocols it speaks and whether it terminates TLS.
struct ListenerConfig: Sendable, Equatable {
    var listen: HostPort
    /// Without TLS: `http1` and/or `h2c` (HTTP/2 with prior knowledge). With TLS: `h2` and/or
    /// `http1`, offered by ALPN in that order.
    var protocols: [ListenerProtocol]
    var tls: TLSListenerConfig?

    static func cleartext(_ listen: HostPort) -> ListenerConfig {
        ListenerConfig(listen: listen, protocols: [.http1], tls: nil)
    }

    /// The ALPN names a TLS listener offers, in the server's order of preference.
    var alpn: [String] {
        var names: [String] = []
        if protocols.contains(.h2) { names.append("h2") }
        if protocols.contains(.http1) { names.append("http/1.1") }
        return names
    }
}

enum ListenerProtocol: String, Sendable, Equatable, CaseIterable {
    case http1
    /// HTTP/2 over TLS, chosen by ALPN.
    case h2
    /// HTTP/2 over cleartext TCP with prior knowledge (the client starts with the HTTP/2 preface).
    case h2c
}

struct TLSListenerConfig: Sendable, Equatable {
    /// The first is served when the client sends no server name or one no certificate covers;
    /// the others are chosen by SNI against the names in their certificates.
    var certificates: [TLSCertificateFiles]
}

struct HostPort: Sendable, Hashable, CustomStringConvertible {
    var host: String
    var port: Int
    var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

struct LimitsConfig: Sendable, Equatable {
    /// Global in-flight limit; `nil` is unlimited.
    var maxRequests: Int?
    /// Largest request head (request line + headers) accepted, in bytes; past it the client gets 431.
    var maxHeaderBytes: Int
    /// Largest request body accepted, in bytes; `nil` is unlimited. Past it the client gets 413.
    var maxBodyBytes: Int?
}

struct TimeoutsConfig: Sendable, Equatable {
    /// Connecting to a backend; past it the client gets 502.
    var connect: Duration
    /// Reading a whole request head from a client; past it the connection is closed (408).
    var requestHeader: Duration
    /// An idle client keep-alive connection is closed after this.
    var idle: Duration
    /// Waiting for the backend's response head (and between body reads); past it 504.
    var backendResponse: Duration
    /// The bounded wait of the preSuspend phase.
    var preSuspend: Duration
    /// A request body that makes no progress for this long: 408 (or a cut connection once the
    /// response has started), so a client that stops sending cannot hold its admission.
    var requestBody: Duration
    /// An upgraded tunnel (WebSocket) with no bytes either way for this long is closed.
    var tunnelIdle: Duration
    /// A cleartext HTTP/1.1 keep-alive connection idle this long is parked (see `IdleParking`);
    /// zero: never.
    var parkIdle: Duration = GatewayConfig.defaultParkIdle
}

struct DeploymentConfig: Sendable, Equatable {
    var name: String
    /// Host names (without port, lower-cased) this deployment answers; `nil` = any host.
    var hosts: [String]?
    var pathPrefix: String
    var maxRequests: Int?
    /// Never empty: absent in YAML means one entry point named "default" with prefix "/".
    var entryPoints: [EntryPointConfig]
    /// Fixed addresses; empty when the gateway runs the deployment's processes itself.
    var backends: [HostPort]
    /// The instances the gateway supervises; their addresses join the rotation when ready.
    var process: ProcessSpec?
    /// How many times a request whose backend failed before answering goes to another backend.
    var retries = GatewayConfig.defaultRetries
    /// A fixed backend that fails this many connections in a row leaves the rotation (0: never).
    var ejectAfter = GatewayConfig.defaultEjectAfter
    /// How long its first ejection lasts; doubled while the probes keep failing.
    var ejectFor = GatewayConfig.defaultEjectFor
    /// A planned stop of an instance gives its upgraded tunnels (WebSocket) this long, then
    /// closes them (1001 Going Away), so a roll is not held for the whole drain_timeout.
    var tunnelGrace = GatewayConfig.defaultTunnelGrace
    /// Register the deployment's ready supervised instances in etcd (`membership`), so other
    /// hosts' gateways route to them too; their planned stops drain there first.
    var publish = false
    /// Hosts that may roll this deployment at once in a fleet roll (`gateway restart D --fleet`).
    var fleetMaxUnavailable = 1
}

struct EntryPointConfig: Sendable, Equatable {
    var name: String
    var pathPrefix: String
    /// Upper-case method names; `nil` = any method.
    var methods: [String]?
    var maxRequests: Int?
}

extension GatewayConfig {
    static let defaultTimeouts = TimeoutsConfig(
        connect: .seconds(5),
        requestHeader: .seconds(30),
        idle: .seconds(60),
        backendResponse: .seconds(60),
        preSuspend: .seconds(1),
        requestBody: .seconds(30),
        tunnelIdle: .seconds(3600)
    )
    static let defaultParkIdle = Duration.seconds(5)
    static let defaultMaxHeaderBytes = 64 * 1024
    static let defaultRetries = 2
    static let defaultEjectAfter = 3
    static let defaultEjectFor: Duration = .seconds(5)
    static let defaultTunnelGrace: Duration = .seconds(5)
}

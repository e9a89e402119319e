import RequestControl

/// The JSON of `GET /stats`: RequestControl's snapshot in the admin API's names.
struct StatsDocument: Encodable {
    struct Global: Encodable {
        var active: Int
        var limit: Int?
        var total: Int
        var rejected: [String: Int]
    }

    struct Deployment: Encodable {
        var name: String
        var state: String
        var active: Int
        var total: Int
        var limit: Int?
        var backends: [Backend]
        var entry_points: [EntryPoint]
    }

    struct Backend: Encodable {
        var address: String
        var state: String
        var in_rotation: Bool
        var active: Int
        var total: Int
        var failures: Int
        /// Out of the balancer's choice after failing `eject_after` times in a row.
        var ejected: Bool
        var ejections: Int
    }

    /// Requests sent again to another backend after theirs failed before answering, and the
    /// retries the retry budget refused.
    struct Retries: Encodable {
        var attempted: Int
        var over_budget: Int
    }

    struct EntryPoint: Encodable {
        var name: String
        var state: String
        var active: Int
        var total: Int
        var limit: Int?
        var rejected: [String: Int]
        var status: [String: Int]
        var latency_ms: Latency
    }

    struct Latency: Encodable {
        var count: Int
        var p50: Double
        var p90: Double
        var p99: Double
        var max: Double
    }

    /// Requests by the protocol they came in on, and HTTP/2 connection events.
    struct Protocols: Encodable {
        struct HTTP1: Encodable {
            var requests: Int
            /// Idle connections parked now, ever parked, ever resumed (`timeouts.park_idle`).
            var parked_connections: Int
            var parks: Int
            var resumes: Int
        }

        struct H2: Encodable {
            var requests: Int
            var connections: Int
            var streams_reset: Int
            var goaways_sent: Int
            var abusive_connections_closed: Int
        }

        var http1: HTTP1
        var h2: H2
    }

    /// Requests and tunnels ended because they stopped moving.
    struct Timeouts: Encodable {
        var request_body: Int
        var tunnel_idle: Int
    }

    /// TLS handshakes on the TLS listeners, and how their connections ended.
    struct TLS: Encodable {
        var handshakes: Int
        var handshake_failures: Int
        var alpn: [String: Int]
        var clean_shutdowns: Int
        var unclean_shutdowns: Int
    }

    /// The admin listener's connections: open now, the cap, and those closed at accept for it.
    struct Admin: Encodable {
        var connections: Int
        var max_connections: Int
        var refused_connections: Int
    }

    var state: String
    var global: Global
    var protocols: Protocols
    var tls: TLS
    var timeouts: Timeouts
    var retries: Retries
    var admin: Admin?
    /// Absent without an access log.
    var access_log: AccessLog? = nil
    var deployments: [Deployment]

    /// Lines the access log dropped because its writer fell behind (or a write failed).
    struct AccessLog: Encodable {
        var dropped_lines: Int
    }

    init(
        _ snapshot: RequestControlSnapshot, traffic: TrafficCounters.Snapshot, tls: TLSCounters.Snapshot = .init(),
        admin: AdminConnections.Snapshot? = nil
    ) {
        self.admin = admin.map { Admin(connections: $0.open, max_connections: $0.maxConnections, refused_connections: $0.refused) }
        self.tls = TLS(
            handshakes: tls.handshakesCompleted, handshake_failures: tls.handshakesFailed,
            alpn: ["h2": tls.alpnH2, "http/1.1": tls.alpnHTTP11, "none": tls.alpnNone, "other": tls.alpnOther],
            clean_shutdowns: tls.cleanShutdowns, unclean_shutdowns: tls.uncleanShutdowns)
        protocols = Protocols(
            http1: .init(
                requests: traffic.http1Requests, parked_connections: traffic.http1Parked, parks: traffic.http1ParkedTotal,
                resumes: traffic.http1Resumed),
            h2: .init(
                requests: traffic.h2Requests, connections: traffic.h2Connections, streams_reset: traffic.h2StreamsReset,
                goaways_sent: traffic.h2GoAways, abusive_connections_closed: traffic.h2AbusiveConnections)
        )
        timeouts = Timeouts(request_body: traffic.requestBodyTimeouts, tunnel_idle: traffic.tunnelIdleTimeouts)
        retries = Retries(attempted: traffic.retries, over_budget: traffic.retriesOverBudget)
        state = snapshot.state.rawValue
        global = Global(
            active: snapshot.active,
            limit: snapshot.limit,
            total: snapshot.total,
            rejected: Self.reasons(snapshot.rejected)
        )
        deployments = snapshot.deployments.map { d in
            Deployment(
                name: d.name,
                state: d.state.rawValue,
                active: d.active,
                total: d.total,
                limit: d.limit,
                backends: d.backends.map {
                    Backend(
                        address: $0.address, state: $0.state.rawValue, in_rotation: $0.inRotation, active: $0.active,
                        total: $0.total, failures: $0.failures, ejected: $0.ejected, ejections: $0.ejections)
                },
                entry_points: d.entryPoints.map { ep in
                    EntryPoint(
                        name: ep.name,
                        state: ep.state.rawValue,
                        active: ep.active,
                        total: ep.total,
                        limit: ep.limit,
                        rejected: Self.reasons(ep.rejected),
                        status: Self.statusClasses(ep.status),
                        latency_ms: Latency(count: ep.latency.count, p50: ep.latency.p50Ms, p90: ep.latency.p90Ms, p99: ep.latency.p99Ms, max: ep.latency.maxMs)
                    )
                }
            )
        }
    }

    static func reasons(_ counts: [RejectionReason: Int]) -> [String: Int] {
        var out: [String: Int] = [:]
        for reason in RejectionReason.allCases { out[reason.rawValue] = counts[reason] ?? 0 }
        return out
    }

    static func statusClasses(_ s: StatusClassCounts) -> [String: Int] {
        ["1xx": s.informational, "2xx": s.success, "3xx": s.redirection, "4xx": s.clientError, "5xx": s.serverError, "aborted": s.aborted]
    }
}

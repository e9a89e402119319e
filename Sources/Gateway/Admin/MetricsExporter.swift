import Prometheus
import RequestControl

/// Renders RequestControl's snapshot as Prometheus text exposition.
///
/// The counters live in RequestControl's lock-free atomics; a fresh swift-prometheus registry is
/// filled from one snapshot per scrape, so the request path never touches the metrics library
/// and the library still owns the format (names, labels, escaping, TYPE lines).
enum MetricsExporter {
    static func render(_ snapshot: RequestControlSnapshot, traffic: TrafficCounters.Snapshot, tls: TLSCounters.Snapshot = .init()) -> [UInt8] {
        let registry = PrometheusCollectorRegistry()
        for (result, count) in [("ok", tls.handshakesCompleted), ("failed", tls.handshakesFailed)] {
            registry.makeCounter(name: "gateway_tls_handshakes_total", labels: [("result", result)], help: "TLS handshakes on the TLS listeners.")
                .increment(by: Int64(count))
        }
        for (proto, count) in [("h2", tls.alpnH2), ("http/1.1", tls.alpnHTTP11), ("none", tls.alpnNone)] {
            registry.makeCounter(name: "gateway_tls_alpn_total", labels: [("protocol", proto)], help: "Completed TLS handshakes by the protocol ALPN chose.")
                .increment(by: Int64(count))
        }
        registry.makeCounter(name: "gateway_tls_unclean_shutdowns_total", labels: [], help: "TLS connections that ended without close_notify.")
            .increment(by: Int64(tls.uncleanShutdowns))
        for (proto, count) in [("http/1.1", traffic.http1Requests), ("h2", traffic.h2Requests)] {
            registry.makeCounter(name: "gateway_requests_by_protocol_total", labels: [("protocol", proto)], help: "Requests received, by protocol.")
                .increment(by: Int64(count))
        }
        registry.makeGauge(name: "gateway_http1_parked_connections", help: "Idle HTTP/1.1 connections parked outside the event loops (timeouts.park_idle).")
            .set(Double(traffic.http1Parked))
        registry.makeCounter(name: "gateway_http1_parks_total", help: "Idle HTTP/1.1 connections parked.").increment(by: Int64(traffic.http1ParkedTotal))
        registry.makeCounter(name: "gateway_http1_resumes_total", help: "Parked HTTP/1.1 connections that came back with a request.")
            .increment(by: Int64(traffic.http1Resumed))
        registry.makeCounter(name: "gateway_h2_connections_total", labels: [], help: "HTTP/2 connections accepted.").increment(by: Int64(traffic.h2Connections))
        registry.makeCounter(name: "gateway_h2_streams_reset_total", labels: [], help: "HTTP/2 streams ended by RST_STREAM.").increment(by: Int64(traffic.h2StreamsReset))
        registry.makeCounter(name: "gateway_h2_goaways_total", labels: [], help: "HTTP/2 connections sent the drain's GOAWAY.").increment(by: Int64(traffic.h2GoAways))
        registry.makeCounter(name: "gateway_h2_abusive_connections_total", labels: [], help: "HTTP/2 connections closed for floods, rapid reset, stalls or protocol errors.")
            .increment(by: Int64(traffic.h2AbusiveConnections))
        for (kind, count) in [("request_body", traffic.requestBodyTimeouts), ("tunnel_idle", traffic.tunnelIdleTimeouts)] {
            registry.makeCounter(name: "gateway_stalled_timeouts_total", labels: [("kind", kind)], help: "Request bodies and tunnels ended because they stopped moving.")
                .increment(by: Int64(count))
        }
        registry.makeCounter(name: "gateway_retries_total", labels: [], help: "Requests sent again to another backend after theirs failed before answering.")
            .increment(by: Int64(traffic.retries))
        registry.makeCounter(name: "gateway_retries_over_budget_total", labels: [], help: "Retries not made because the deployment's retry budget was spent.")
            .increment(by: Int64(traffic.retriesOverBudget))
        registry.makeGauge(name: "gateway_requests_in_flight_total", help: "Requests in flight in the whole gateway.").set(Double(snapshot.active))
        registry.makeCounter(name: "gateway_requests_admitted_total", help: "Requests admitted by the gateway.").increment(by: Int64(snapshot.total))
        registry.makeGauge(name: "gateway_requests_limit", help: "The global in-flight limit (0 = unlimited).").set(Double(snapshot.limit ?? 0))
        for state in SuspendState.allCases {
            registry.makeGauge(name: "gateway_state", labels: [("state", state.rawValue)], help: "1 for the gateway's suspend state.")
                .set(Double(snapshot.state == state ? 1 : 0))
        }
        for d in snapshot.deployments {
            let dl = [("deployment", d.name)]
            registry.makeGauge(name: "gateway_deployment_requests_in_flight", labels: dl, help: "Requests in flight per deployment.").set(Double(d.active))
            registry.makeGauge(name: "gateway_deployment_suspended", labels: dl, help: "1 when the deployment is not RUNNING.")
                .set(Double(d.state == .running ? 0 : 1))
            for b in d.backends {
                let bl = dl + [("backend", b.address)]
                registry.makeGauge(name: "gateway_backend_requests_in_flight", labels: bl, help: "Requests in flight per backend.").set(Double(b.active))
                registry.makeCounter(name: "gateway_backend_requests_total", labels: bl, help: "Requests sent to a backend.").increment(by: Int64(b.total))
                registry.makeCounter(name: "gateway_backend_failures_total", labels: bl, help: "Backend connect, protocol or timeout failures.").increment(by: Int64(b.failures))
                registry.makeGauge(name: "gateway_backend_in_rotation", labels: bl, help: "1 when the load balancer may pick the backend.").set(Double(b.inRotation ? 1 : 0))
                registry.makeGauge(name: "gateway_backend_ejected", labels: bl, help: "1 while the backend is ejected after failing in a row.").set(Double(b.ejected ? 1 : 0))
                registry.makeCounter(name: "gateway_backend_ejections_total", labels: bl, help: "Times the backend was ejected.").increment(by: Int64(b.ejections))
            }
            for ep in d.entryPoints {
                let el = dl + [("entry_point", ep.name)]
                registry.makeGauge(name: "gateway_requests_in_flight", labels: el, help: "Requests in flight per control point.").set(Double(ep.active))
                registry.makeCounter(name: "gateway_requests_total", labels: el, help: "Requests admitted per control point.").increment(by: Int64(ep.total))
                for (reason, count) in StatsDocument.reasons(ep.rejected).sorted(by: { $0.key < $1.key }) {
                    registry.makeCounter(name: "gateway_requests_rejected_total", labels: el + [("reason", reason)], help: "Requests refused with 503, by reason.")
                        .increment(by: Int64(count))
                }
                for (cls, count) in StatsDocument.statusClasses(ep.status).sorted(by: { $0.key < $1.key }) {
                    registry.makeCounter(name: "gateway_responses_total", labels: el + [("class", cls)], help: "Responses by status class.")
                        .increment(by: Int64(count))
                }
                for (q, value) in [("0.5", ep.latency.p50Ms), ("0.9", ep.latency.p90Ms), ("0.99", ep.latency.p99Ms), ("1", ep.latency.maxMs)] {
                    registry.makeGauge(name: "gateway_request_duration_seconds", labels: el + [("quantile", q)], help: "Request latency quantiles.")
                        .set(Double(value / 1000))
                }
            }
        }
        return registry.emitToBuffer()
    }
}

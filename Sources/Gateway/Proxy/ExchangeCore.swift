import Logging
import NIOCore
import NIOHTTP1
import RequestControl

/// What a request's protocol side tells the exchange core and does for it: an HTTP/1.1
/// connection (`ProxyHandler`) or an HTTP/2 stream (`H2StreamExchange`). Facts only, and the
/// three things only the protocol can do: wait, send the request on a connection, and answer.
protocol ExchangeCarrier: AnyObject {
    /// The request is safe to send twice (RFC 9110 9.2.2).
    var requestIsIdempotent: Bool { get }
    /// The request has a body (sent or still to come).
    var requestHasBody: Bool { get }
    var requestEnded: Bool { get }
    var requestBodyForwarded: Bool { get }
    var responseStarted: Bool { get }
    /// Waiting for a connection (and not answered or gone meanwhile).
    var isConnecting: Bool { get }
    var isProxying: Bool { get }
    /// The request must not go on a pooled connection (an upgrade: it becomes a tunnel).
    var needsOwnConnection: Bool { get }
    func enterConnecting()
    /// Sends the request on `connection` (now `core.upstream`) and starts the exchange.
    func attach(_ connection: UpstreamConnection)
    /// Ends the exchange with the gateway's own answer, or by cutting a response under way.
    func failExchange(status: HTTPResponseStatus, reason: String, backendFailed: Bool, retryAfter: Int?)
}

/// One request's way through the gateway, the same for both protocols: routing and admission
/// (the 404, 413 and 503 answers), the choice of a backend, the connection to it with failover
/// and retries, and the release of all of it when the exchange ends. It owns that state; the
/// carrier owns the protocol's.
///
/// An HTTP/1.1 connection keeps one core for all its requests (`reset` between them); an HTTP/2
/// stream has its own. Touched only on the loop of its connection.
final class ExchangeCore {
    let loop: LoopContext
    /// The protocol side. It owns this core; a connect in flight keeps it alive by capturing it
    /// (see `connectUpstream`), every other call comes from it.
    unowned(unsafe) let carrier: any ExchangeCarrier

    private(set) var route: Router.Route?
    private(set) var backend: (index: Int, backend: LoadBalancer.Backend)?
    /// Backends of this request whose connect failed; the balancer skips them.
    private var failedBackends: [Int] = []
    /// The backend connection of the exchange in progress.
    var upstream: UpstreamConnection?
    /// The request already went once more on a fresh connection (a stale keep-alive one closed).
    private var retried = false
    /// Attempts on other backends after one failed (bounded by the deployment's `retries`).
    private var retriesUsed = 0
    /// The current attempt is a retry and holds a slot of the deployment's retry budget.
    private var holdsRetryBudget = false
    /// The admission of the request: held until the exchange ends.
    var token: RequestToken?

    init(loop: LoopContext, carrier: any ExchangeCarrier) {
        self.loop = loop
        self.carrier = carrier
    }

    /// Forgets the last exchange (HTTP/1.1, before the next request on the connection).
    func reset() {
        route = nil
        backend = nil
        failedBackends.removeAll(keepingCapacity: true)
        retried = false
        retriesUsed = 0
        holdsRetryBudget = false
    }

    // MARK: Admission

    /// Routes and admits a request: nil when it is admitted (the token is held and the request
    /// may go to a backend), else the answer the client gets.
    ///
    /// - Parameters:
    ///   - found: the router's answer for the request.
    ///   - declaredLength: the body length the request announced, if any.
    ///   - noRoute: what the 404 says (made only when there is no route).
    ///   - log: the request's access-log record, told the route and any refusal.
    func admit(
        _ found: Router.Route?, declaredLength: Int?, noRoute: () -> String, log: inout AccessLogRecord?
    ) -> LocalAnswer? {
        guard let route = found else {
            return LocalAnswer(status: .notFound, reason: noRoute())
        }
        self.route = route
        log?.routed(route)
        if let maxBody = loop.limits.maxBodyBytes, let length = declaredLength, length > maxBody {
            return LocalAnswer(status: .payloadTooLarge, reason: "request body of \(length) bytes exceeds \(maxBody)")
        }
        switch route.controlPoint.beginRequest() {
        case .run(let admitted):
            token = consume admitted
            return nil
        case .rejected(let reason):
            log?.rejectReason = reason.rawValue
            return LocalAnswer.rejected(reason, route: route)
        }
    }

    // MARK: Backend

    /// Picks a backend the request has not failed on and gets a connection to it: an idle pooled
    /// one at once, else a new one. A failed connect moves on to the next backend, since nothing
    /// reached the one that failed.
    func connectUpstream() {
        guard let route else { return }
        guard let chosen = route.deployment.balancer.acquire(excluding: failedBackends) else {
            if failedBackends.isEmpty {
                carrier.failExchange(
                    status: .serviceUnavailable, reason: "no backend of deployment \(route.deployment.name) is in rotation",
                    backendFailed: false, retryAfter: 1)
            } else {
                carrier.failExchange(
                    status: .badGateway, reason: "no backend of deployment \(route.deployment.name) accepted a connection",
                    backendFailed: false, retryAfter: nil)
            }
            return
        }
        backend = chosen
        carrier.enterConnecting()
        // An upgrade gets a new connection: servers often take an upgrade only as the first
        // request of a connection, and a tunnel never returns its connection to the pool anyway.
        if !carrier.needsOwnConnection, let idle = loop.pool.takeIdle(chosen.backend) {
            attach(idle)
            return
        }
        // The carrier is captured strongly: a client gone while its connect is pending is freed
        // only once the connect is done (the core's own reference to it does not keep it).
        loop.pool.connect(chosen.backend).assumeIsolated().whenComplete { [self, carrier] result in
            guard carrier.isConnecting else {
                if case .success(let connection) = result { connection.close() }
                return
            }
            switch result {
            case .success(let connection):
                attach(connection)
            case .failure(let error):
                // Once per run of failures: a dead backend under load would write a line per
                // request (thousands a second) until it is ejected or back.
                let metadata: Logger.Metadata = [
                    "deployment": "\(route.deployment.name)", "backend": "\(chosen.backend.address)", "error": "\(error)",
                ]
                if chosen.backend.counter.failuresInARow == 0 {
                    loop.logger.warning("backend connect failed", metadata: metadata)
                } else {
                    loop.logger.debug("backend connect failed", metadata: metadata)
                }
                // Nothing reached the backend: any request may go to another one, and the retry
                // adds no work anywhere, so the retry budget does not limit it.
                retryElsewhere(
                    after: "backend \(chosen.backend.address) of deployment \(route.deployment.name) refused the connection: \(error)",
                    nothingSent: true)
            }
        }
    }

    private func attach(_ connection: UpstreamConnection) {
        connection.exchanges += 1
        upstream = connection
        carrier.attach(connection)
    }

    /// The current backend failed before any byte of the response: it is released as failed
    /// (which may eject it), and the request goes to another backend if the deployment's
    /// `retries` allow and, unless nothing of it was sent (a refused connect), its retry budget;
    /// else 502.
    func retryElsewhere(after failure: String, nothingSent: Bool = false) {
        guard let route, let chosen = backend else { return }
        releaseBackend(failed: true)
        failedBackends.append(chosen.index)
        let failover = route.deployment.failover
        guard retriesUsed < failover.retries else {
            carrier.failExchange(status: .badGateway, reason: failure, backendFailed: false, retryAfter: nil)
            return
        }
        if !nothingSent {
            guard failover.budget.tryAcquire(active: route.deployment.balancer.active) else {
                loop.traffic.retriesOverBudget.add(1, ordering: .relaxed)
                carrier.failExchange(
                    status: .badGateway, reason: failure + " (retry budget spent)", backendFailed: false, retryAfter: nil)
                return
            }
            holdsRetryBudget = true
        }
        retriesUsed += 1
        loop.traffic.retries.add(1, ordering: .relaxed)
        connectUpstream()
    }

    /// Whether a request whose backend broke before answering may go to another backend: its
    /// body (if any) must not have left, since it is not kept; and it must be idempotent (RFC
    /// 9110 9.2.2) or have a body still unsent, so the backend cannot have acted on it.
    private var mayRetryElsewhere: Bool {
        guard !carrier.responseStarted, !carrier.requestBodyForwarded else { return false }
        return carrier.requestIsIdempotent || carrier.requestHasBody
    }

    /// The backend closed the connection during the exchange. A reused keep-alive connection
    /// closed before anything of the request or its response moved was never processed, so an
    /// idempotent request goes once more on a fresh connection to the same backend (and on to
    /// another if that is refused). Otherwise the request goes to another backend when that is
    /// safe (`mayRetryElsewhere`), else it is a 502 (or a cut response).
    func backendClosed(error: Error?) {
        guard carrier.isProxying, let closed = upstream else { return }
        upstream = nil
        let failure = "backend \(closed.backend) closed the connection" + (error.map { ": \($0)" } ?? "")
        guard !retried, !carrier.responseStarted, !carrier.requestBodyForwarded, carrier.requestEnded, closed.exchanges > 1,
            carrier.requestIsIdempotent
        else {
            // A fresh connection broke: the backend failed. Another one may take the request.
            if mayRetryElsewhere {
                closed.close()
                retryElsewhere(after: failure)
            } else {
                carrier.failExchange(status: .badGateway, reason: failure, backendFailed: true, retryAfter: nil)
            }
            return
        }
        retried = true
        carrier.enterConnecting()
        loop.pool.connect(sameAs: closed).assumeIsolated().whenComplete { [self, carrier] result in
            guard carrier.isConnecting else {
                if case .success(let fresh) = result { fresh.close() }
                return
            }
            switch result {
            case .success(let fresh): attach(fresh)
            case .failure(let error):
                // Not a stale connection after all: the backend is gone. Another may answer.
                retryElsewhere(after: "backend \(closed.backend) closed the connection and refused a new one: \(error)")
            }
        }
    }

    /// Closes the backend connection of an exchange that failed or was abandoned.
    func dropUpstream() {
        upstream?.close()
        upstream = nil
    }

    /// Gives the backend back to the balancer (its in-flight count, and a failure if it failed).
    func releaseBackend(failed: Bool) {
        if let chosen = backend {
            backend = nil
            chosen.backend.counter.release(failed: failed)
            if failed, let route { loop.ejection?.backendFailed(chosen.backend, deployment: route.deployment, loop: loop) }
        }
        if holdsRetryBudget {
            holdsRetryBudget = false
            route?.deployment.failover.budget.release()
        }
    }

    /// The response is complete. The backend connection goes back to the pool when it can carry
    /// another request (`reusable`: kept alive and read to its end; the request fully sent; the
    /// backend still in rotation), else it is closed. Then the backend is released.
    func finishWithBackend(reusable: Bool) {
        if let done = upstream {
            upstream = nil
            if reusable, carrier.requestEnded, backend?.backend.counter.inRotation != false {
                loop.pool.release(done)
            } else {
                done.close()
            }
        }
        releaseBackend(failed: false)
    }

    /// Takes the backend connection out of the exchange (it becomes a tunnel's).
    func takeUpstream() -> UpstreamConnection? {
        defer { upstream = nil }
        return upstream
    }
}

extension HTTPMethod {
    /// Safe to send twice (RFC 9110 9.2.2).
    var isIdempotent: Bool {
        switch self {
        case .GET, .HEAD, .OPTIONS, .PUT, .DELETE: true
        default: false
        }
    }
}

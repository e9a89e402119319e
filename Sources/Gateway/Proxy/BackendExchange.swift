import Logging
import NIOCore
import NIOHTTP1

/// One request on its way to a backend, as an HTTP/1.1 connection (`ProxyHandler`) and an
/// HTTP/2 stream (`H2StreamExchange`) both carry it: which backend, which connection, and what
/// happens when a connect fails or a pooled connection turns out closed. The choice and the
/// retries live here once; each conformer keeps its own state and says how to attach and fail.
protocol BackendExchange: AnyObject {
    var loop: LoopContext { get }
    var route: Router.Route? { get }
    var backend: (index: Int, backend: LoadBalancer.Backend)? { get set }
    /// Backends of this request whose connect failed; the balancer skips them.
    var failedBackends: [Int] { get set }
    var upstream: UpstreamConnection? { get set }
    var upstreamHead: HTTPRequestHead? { get }
    /// The request already went once more on a fresh connection (a stale keep-alive one closed).
    var retried: Bool { get set }
    /// Attempts on other backends after one failed (bounded by the deployment's `retries`).
    var retriesUsed: Int { get set }
    /// The current attempt is a retry and holds a slot of the deployment's retry budget.
    var holdsRetryBudget: Bool { get set }
    /// The request has a body (sent or still to come).
    var requestHasBody: Bool { get }
    var responseStarted: Bool { get }
    var requestBodyForwarded: Bool { get }
    var requestEnded: Bool { get }
    /// Waiting for a connection (and not answered or gone meanwhile).
    var isConnecting: Bool { get }
    /// The request must not go on a pooled connection (an upgrade: it becomes a tunnel).
    var needsOwnConnection: Bool { get }
    var isProxying: Bool { get }
    func enterConnecting()
    /// Sends the request on `connection` and starts the exchange.
    func attach(_ connection: UpstreamConnection)
    func failExchange(status: HTTPResponseStatus, reason: String, backendFailed: Bool, retryAfter: Int?)
}

extension BackendExchange {
    var needsOwnConnection: Bool { false }

    /// Picks a backend the request has not failed on and gets a connection to it: an idle pooled
    /// one at once, else a new one. A failed connect moves on to the next backend, since nothing
    /// reached the one that failed.
    func connectUpstream() {
        guard let route else { return }
        guard let chosen = route.deployment.balancer.acquire(excluding: failedBackends) else {
            if failedBackends.isEmpty {
                failExchange(
                    status: .serviceUnavailable, reason: "no backend of deployment \(route.deployment.name) is in rotation",
                    backendFailed: false, retryAfter: 1)
            } else {
                failExchange(
                    status: .badGateway, reason: "no backend of deployment \(route.deployment.name) accepted a connection",
                    backendFailed: false, retryAfter: nil)
            }
            return
        }
        backend = chosen
        enterConnecting()
        // An upgrade gets a new connection: servers often take an upgrade only as the first
        // request of a connection (NIO's upgrade handler leaves after it), and a tunnel never
        // returns its connection to the pool anyway.
        if !needsOwnConnection, let idle = loop.pool.takeIdle(chosen.backend.address) {
            attach(idle)
            return
        }
        loop.pool.connect(chosen.backend.address).assumeIsolated().whenComplete { [self] result in
            guard isConnecting else {
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
            failExchange(status: .badGateway, reason: failure, backendFailed: false, retryAfter: nil)
            return
        }
        if !nothingSent {
            guard failover.budget.tryAcquire(active: route.deployment.balancer.active) else {
                loop.traffic.retriesOverBudget.add(1, ordering: .relaxed)
                failExchange(status: .badGateway, reason: failure + " (retry budget spent)", backendFailed: false, retryAfter: nil)
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
    var mayRetryElsewhere: Bool {
        guard !responseStarted, !requestBodyForwarded, let method = upstreamHead?.method else { return false }
        return method.isIdempotent || requestHasBody
    }

    /// The backend closed the connection during the exchange. A reused keep-alive connection
    /// closed before anything of the request or its response moved was never processed, so an
    /// idempotent request goes once more on a fresh connection to the same backend (and on to
    /// another if that is refused). Otherwise the request goes to another backend when that is
    /// safe (`mayRetryElsewhere`), else it is a 502 (or a cut response).
    func upstreamClosed(error: Error?) {
        guard isProxying, let closed = upstream else { return }
        upstream = nil
        let failure = "backend \(closed.backend) closed the connection" + (error.map { ": \($0)" } ?? "")
        guard !retried, !responseStarted, !requestBodyForwarded, requestEnded, closed.exchanges > 1,
            upstreamHead?.method.isIdempotent == true
        else {
            // A fresh connection broke: the backend failed. Another one may take the request.
            if mayRetryElsewhere {
                closed.close()
                retryElsewhere(after: failure)
            } else {
                failExchange(status: .badGateway, reason: failure, backendFailed: true, retryAfter: nil)
            }
            return
        }
        retried = true
        enterConnecting()
        loop.pool.connect(closed.backend).assumeIsolated().whenComplete { [self] result in
            guard isConnecting else {
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
            if reusable, requestEnded, backend?.backend.counter.inRotation != false {
                loop.pool.release(done)
            } else {
                done.close()
            }
        }
        releaseBackend(failed: false)
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

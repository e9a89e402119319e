import NIOHTTP1
import RequestControl

/// A response the gateway makes itself instead of a backend's: a routing miss (404), a body
/// over the limit (413), a refusal (503 with `Retry-After` and `x-gateway-reject`), a backend
/// that failed (502) or was too slow (504). Decided once for both protocols; HTTP/1.1
/// (`HTTP1LocalResponse`) and HTTP/2 (`H2StreamExchange`) only render it.
struct LocalAnswer {
    var status: HTTPResponseStatus
    var reason: String
    var retryAfter: Int?
    var extraHeaders: [(String, String)] = []

    /// The plain-text body: status and reason, so a human reading it knows what happened.
    var bodyText: String { "\(status.code) \(status.reasonPhrase): \(reason)\n" }

    /// What a refused client is told, and when it should try again (seconds).
    static func rejected(_ reason: RejectionReason, route: Router.Route) -> LocalAnswer {
        let (text, retryAfter): (String, Int) =
            switch reason {
            case .suspended:
                ("draining: \(route.deployment.name)/\(route.controlPoint.entryPoint) is not accepting requests", 5)
            case .globalLimit:
                ("overloaded: the gateway's request limit is reached", 1)
            case .deploymentLimit:
                ("overloaded: deployment \(route.deployment.name) is at its request limit", 1)
            case .entryPointLimit:
                ("overloaded: entry point \(route.deployment.name)/\(route.controlPoint.entryPoint) is at its request limit", 1)
            }
        return LocalAnswer(
            status: .serviceUnavailable, reason: text, retryAfter: retryAfter, extraHeaders: [("x-gateway-reject", reason.rawValue)])
    }
}

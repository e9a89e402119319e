import NIOCore

/// What the access log says about one HTTP/1.1 request, HTTP/2 stream or tunnel. Filled in as the
/// exchange goes (route, backend, bytes) and handed to the loop's `AccessLogBuffer` once, when it
/// ends.
struct AccessLogRecord {
    /// Wall-clock time the request head arrived (seconds and nanoseconds since 1970, UTC).
    var seconds: Int
    var nanoseconds: Int
    /// When the head arrived, for the duration.
    var started: NIODeadline
    var requestID: String
    var clientIP: String
    var clientPort: Int
    var method: String
    /// The request target as the client sent it (`:path` for HTTP/2).
    var path: String
    /// `HTTP/1.1`, `HTTP/1.0` or `HTTP/2`.
    var httpVersion: String
    var deployment: String?
    var entryPoint: String?
    /// The backend the request last went to; nil when none was chosen (a local answer).
    var backend: HostPort?
    var status = 0
    /// Body bytes from the client (bytes towards the backend, for a tunnel).
    var bytesIn = 0
    /// Body bytes to the client (bytes from the backend, for a tunnel).
    var bytesOut = 0
    var durationNanoseconds: Int64 = 0
    /// RequestControl's reason (`global_limit`, `suspended`...) when the request was refused.
    var rejectReason: String?
    /// Only kept for the combined format.
    var referer: String?
    var userAgent: String?

    /// The exchange matched a deployment and entry point.
    mutating func routed(_ route: Router.Route) {
        deployment = route.deployment.name
        entryPoint = route.controlPoint.entryPoint
    }
}

/// What a demo-backend request asks for, decided from its URI alone.
///
/// Kept apart from the channel handler so the parsing rules (query parameters, limits) are plain
/// values a test can check, and the handler only carries them out.
enum DemoRoute: Equatable, Sendable {
    /// `GET /`: who answered (name and pid), to tell backends apart behind a balancer.
    case hello
    /// `GET /headers`: the request headers as received, as JSON.
    case headers
    /// `GET /sleep?ms=N`: answer after N milliseconds without holding a thread.
    case sleep(milliseconds: Int64)
    /// `/echo`, any method: stream the request body back (and a chunked request's trailers).
    case echo
    /// `GET /status/N`: answer with status N.
    case status(Int)
    /// `GET /bytes?n=N`: N bytes of body, streamed under backpressure.
    case bytes(Int64)
    /// `GET /health`.
    case health
    /// `GET /ws` without a WebSocket upgrade (an upgrade never reaches routing).
    case webSocketWithoutUpgrade
    /// A known path with a bad parameter; the reason goes back to the client.
    case badRequest(String)
    case notFound

    /// Longest `/sleep` accepted: long enough for any drain test, short enough to end.
    static let maxSleepMilliseconds: Int64 = 10 * 60 * 1000
    /// Largest `/bytes` body: big enough for throughput tests, small enough to finish.
    static let maxBytes: Int64 = 1 << 30

    init(uri: String) {
        let pathEnd = uri.firstIndex(of: "?") ?? uri.endIndex
        let path = uri[..<pathEnd]
        let query = pathEnd < uri.endIndex ? uri[uri.index(after: pathEnd)...] : ""

        switch path {
        case "/":
            self = .hello
        case "/headers":
            self = .headers
        case "/health":
            self = .health
        case "/echo":
            self = .echo
        case "/ws":
            self = .webSocketWithoutUpgrade
        case "/sleep":
            guard let ms = Self.parameter("ms", in: query).flatMap({ Int64($0) }),
                (0...Self.maxSleepMilliseconds).contains(ms)
            else {
                self = .badRequest("ms must be an integer from 0 to \(Self.maxSleepMilliseconds)")
                return
            }
            self = .sleep(milliseconds: ms)
        case "/bytes":
            guard let n = Self.parameter("n", in: query).flatMap({ Int64($0) }), (0...Self.maxBytes).contains(n)
            else {
                self = .badRequest("n must be an integer from 0 to \(Self.maxBytes)")
                return
            }
            self = .bytes(n)
        case _ where path.hasPrefix("/status/"):
            guard let code = Int(path.dropFirst("/status/".count)), (200...599).contains(code) else {
                self = .badRequest("status must be from 200 to 599")
                return
            }
            self = .status(code)
        default:
            self = .notFound
        }
    }

    private static func parameter(_ name: String, in query: Substring) -> Substring? {
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if parts.count == 2 && parts[0] == name { return parts[1] }
        }
        return nil
    }
}

import NIOHTTP1

/// A whole HTTP response as a test sees it.
struct TestHTTPResponse: Sendable {
    var version: HTTPVersion
    var status: HTTPResponseStatus
    var headers: HTTPHeaders
    /// The body, unless the request asked for it not to be kept (`keepBody: false`).
    var body: [UInt8]
    /// Body bytes received, kept or not.
    var bodyCount: Int
    /// 1xx heads (such as `100 Continue`) that arrived before the final one, in order.
    var informational: [HTTPResponseHead] = []

    /// The body decoded as UTF-8 (invalid sequences replaced), for text assertions.
    var bodyString: String { String(decoding: self.body, as: UTF8.self) }

    /// The first value of header `name` (case-insensitive), or `nil`.
    func header(_ name: String) -> String? { self.headers.first(name: name) }
}

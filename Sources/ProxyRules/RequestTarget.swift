/// Where an HTTP/1.x request goes (RFC 9112 3.2): its Host and the origin-form target the
/// backend gets, or why the request is refused.
///
/// An HTTP/1.1 request needs exactly one valid `Host`; HTTP/1.0 may leave it out. An
/// absolute-form target (`http://shop.example/path`) replaces `Host` with its authority, and the
/// backend gets the origin form (`/path`), as RFC 9112 3.2.2 has a proxy forward to an origin.
public struct RequestTarget: Equatable, Sendable {
    /// The `Host` value the backend gets (as the client wrote it); nil for HTTP/1.0 without one.
    public var host: String?
    /// `host` normalised for routing (lower-cased, no port); computed on demand, since only
    /// deployments chosen by host need it.
    public var routingHost: String? { host.flatMap(HostName.normalize) }
    /// The origin-form target (or `*` for `OPTIONS *`).
    public var uri: String

    public struct Refusal: Error, Equatable, Sendable {
        public var reason: String

        public init(reason: String) {
            self.reason = reason
        }
    }

    /// `http://authority/path?query` → (authority, `/path?query`); the path is `/` when absent.
    public static func absoluteForm(_ uri: String) -> (String, String)? {
        guard let colon = uri.firstIndex(of: ":"), uri[colon...].hasPrefix("://") else { return nil }
        let scheme = uri[..<colon].lowercased()
        guard scheme == "http" || scheme == "https" else { return nil }
        let rest = uri[uri.index(colon, offsetBy: 3)...]
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        let authority = String(rest[..<authorityEnd])
        guard !authority.isEmpty, !authority.contains("@") else { return nil }
        var path = String(rest[authorityEnd...])
        if path.isEmpty || path.hasPrefix("?") { path = "/" + path }
        return (authority, path)
    }
}

import NIOHTTP1

/// The request head a backend receives, for HTTP/1.1 and HTTP/2 clients alike: the client's
/// fields less the hop-by-hop ones, the gateway's `X-Forwarded-*`, and body framing that the
/// gateway sets itself from what it parsed.
///
/// The backend must read exactly the message the gateway read, no more and no less: request
/// smuggling lives in the difference. So the client's `Content-Length` and `Transfer-Encoding`
/// never pass through as they were; the framing is written anew from `Body`, and the upstream
/// encoder is told not to change it (NIO's, by default, drops the framing of a `TRACE` and
/// leaves a `GET` body unframed).
public enum ForwardedRequest {
    /// The body the gateway is about to forward, as its parser framed it.
    public enum Body: Equatable, Sendable {
        /// No body: no framing fields (a `POST`, `PUT` or `PATCH` says `content-length: 0`, which
        /// some servers require of those methods).
        case none
        /// Exactly this many bytes follow.
        case length(Int)
        /// A body of unknown length (or one with trailers): sent chunked.
        case chunked
    }

    public static func head(
        method: HTTPMethod,
        uri: String,
        headers inbound: HTTPHeaders,
        body: Body,
        clientAddress: String,
        scheme: String
    ) -> HTTPRequestHead {
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: uri)
        head.headers = forwardedHeaders(inbound, clientAddress: clientAddress, scheme: scheme)
        switch body {
        case .none:
            if method == .POST || method == .PUT || method == .PATCH {
                head.headers.add(name: "content-length", value: "0")
            }
        case .length(let count):
            head.headers.add(name: "content-length", value: String(count))
        case .chunked:
            head.headers.add(name: "transfer-encoding", value: "chunked")
        }
        return head
    }

    /// The client's fields as the backend sees them, without any framing field.
    public static func forwardedHeaders(_ inbound: HTTPHeaders, clientAddress: String, scheme: String) -> HTTPHeaders {
        var out = HTTPHeaders()
        let named = connectionTokens(inbound)
        var forwardedFor = ""
        for (name, value) in inbound {
            if HeaderName.isHopByHop(name) || HeaderName.isFraming(name) || HeaderName.equals(name, "expect") {
                continue
            }
            if HeaderName.isForwarded(name) {
                if HeaderName.equals(name, "x-forwarded-for") { forwardedFor += value + ", " }
                continue
            }
            // A client may name any field in `Connection`, but not the ones that say where the
            // request goes or who sent it: that nomination is ignored.
            if !named.isEmpty, !HeaderName.equals(name, "host"), named.contains(where: { HeaderName.equals($0, name) }) {
                continue
            }
            out.add(name: name, value: value)
        }
        out.add(name: "x-forwarded-for", value: forwardedFor.isEmpty ? clientAddress : forwardedFor + clientAddress)
        out.add(name: "x-forwarded-proto", value: scheme)
        if let host = inbound.first(name: "host") {
            out.add(name: "x-forwarded-host", value: host)
        }
        return out
    }

    /// Header names listed in `Connection` (other than its own keywords), which are hop-by-hop too.
    public static func connectionTokens(_ headers: HTTPHeaders) -> [Substring] {
        guard headers.contains(name: "connection") else { return [] }
        return headers[canonicalForm: "connection"].filter {
            !HeaderName.equals($0, "keep-alive") && !HeaderName.equals($0, "close") && !HeaderName.equals($0, "upgrade")
        }
    }

    /// Why a request's framing is refused, with the status to answer.
    public struct Refusal: Error, Equatable, Sendable {
        public var status: HTTPResponseStatus
        public var reason: String
    }

    /// How an HTTP/1.x request's body is framed, as NIO's parser (llhttp) read it: it has already
    /// refused a `Content-Length` beside `Transfer-Encoding`, conflicting lengths and a coding list
    /// that does not end in chunked. What is left to refuse is a coding the gateway cannot pass on
    /// as it is (RFC 9112 6.1: 501), since the backend would get the body de-chunked but still
    /// coded.
    public static func body(of headers: HTTPHeaders) -> Result<Body, Refusal> {
        if headers.contains(name: "transfer-encoding") {
            let codings = headers[canonicalForm: "transfer-encoding"]
            guard codings.count == 1, HeaderName.equals(codings[0], "chunked") else {
                return .failure(Refusal(
                    status: .notImplemented,
                    reason: "transfer coding \(codings.joined(separator: ", ")) is not supported; only chunked is"))
            }
            return .success(.chunked)
        }
        guard let text = headers.first(name: "content-length") else { return .success(.none) }
        guard let length = Int(text), length >= 0 else {
            return .failure(Refusal(status: .badRequest, reason: "invalid content-length \(text)"))
        }
        return .success(length == 0 ? .none : .length(length))
    }
}

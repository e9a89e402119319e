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
enum ForwardedRequest {
    /// The body the gateway is about to forward, as its parser framed it.
    enum Body: Equatable {
        /// No body: no framing fields (a `POST`, `PUT` or `PATCH` says `content-length: 0`, which
        /// some servers require of those methods).
        case none
        /// Exactly this many bytes follow.
        case length(Int)
        /// A body of unknown length (or one with trailers): sent chunked.
        case chunked
    }

    static func head(
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
    static func forwardedHeaders(_ inbound: HTTPHeaders, clientAddress: String, scheme: String) -> HTTPHeaders {
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
    static func connectionTokens(_ headers: HTTPHeaders) -> [Substring] {
        guard headers.contains(name: "connection") else { return [] }
        return headers[canonicalForm: "connection"].filter {
            !HeaderName.equals($0, "keep-alive") && !HeaderName.equals($0, "close") && !HeaderName.equals($0, "upgrade")
        }
    }
}

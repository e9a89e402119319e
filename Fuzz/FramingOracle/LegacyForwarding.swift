import NIOHTTP1
import ProxyRules

/// The gateway's forwarding rules as they were before it scanned heads itself: NIO's parsed
/// request (HTTPHeaders of strings) in, the head a backend got out. Kept here, and only here, so
/// `FramingOracle.run(legacyFraming: true)` can show that the oracle catches the old framing;
/// the gateway itself runs `ForwardedRequestHead` on scanned bytes.
enum LegacyForwarding {
    typealias Body = ForwardedRequest.Body

    struct Target {
        var host: String?
        var uri: String
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
            if isHopByHop(name) || isFraming(name) || HeaderName.equals(name, "expect") {
                continue
            }
            if isForwarded(name) {
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

    /// Why a request's framing is refused, with the status to answer.
    struct Refusal: Error, Equatable, Sendable {
        var status: HTTPResponseStatus
        var reason: String
    }

    /// How an HTTP/1.x request's body is framed, as NIO's parser (llhttp) read it: it has already
    /// refused a `Content-Length` beside `Transfer-Encoding`, conflicting lengths and a coding list
    /// that does not end in chunked. What is left to refuse is a coding the gateway cannot pass on
    /// as it is (RFC 9112 6.1: 501), since the backend would get the body de-chunked but still
    /// coded.
    static func body(of headers: HTTPHeaders) -> Result<Body, Refusal> {
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
    /// Hop-by-hop headers (RFC 9110 7.6.1): the business of one connection, never forwarded.
    static func isHopByHop(_ name: String) -> Bool {
        switch name.utf8.count {
        case 2: return HeaderName.equals(name, "te")
        case 7: return HeaderName.equals(name, "trailer") || HeaderName.equals(name, "upgrade")
        case 10: return HeaderName.equals(name, "connection") || HeaderName.equals(name, "keep-alive")
        case 16: return HeaderName.equals(name, "proxy-connection")
        case 17: return HeaderName.equals(name, "transfer-encoding")
        case 18: return HeaderName.equals(name, "proxy-authenticate")
        case 19: return HeaderName.equals(name, "proxy-authorization")
        default: return false
        }
    }

    /// The fields that frame a message body; the gateway writes them itself for what it forwards.
    static func isFraming(_ name: String) -> Bool {
        switch name.utf8.count {
        case 14: return HeaderName.equals(name, "content-length")
        case 17: return HeaderName.equals(name, "transfer-encoding")
        default: return false
        }
    }

    /// The `X-Forwarded-*` headers the gateway sets itself.
    static func isForwarded(_ name: String) -> Bool {
        switch name.utf8.count {
        case 15: return HeaderName.equals(name, "x-forwarded-for")
        case 16: return HeaderName.equals(name, "x-forwarded-host")
        case 17: return HeaderName.equals(name, "x-forwarded-proto")
        default: return false
        }
    }

    static func target(_ head: HTTPRequestHead) -> Result<Target, RequestTarget.Refusal> {
        // One pass without an array: this runs for every request.
        var host: String?
        for (name, value) in head.headers where HeaderName.equals(name, "host") {
            guard host == nil else { return .failure(RequestTarget.Refusal(reason: "more than one Host field")) }
            host = value
        }
        var uri = head.uri
        if !uri.hasPrefix("/"), uri != "*" {
            guard let (authority, path) = RequestTarget.absoluteForm(uri) else {
                return .failure(RequestTarget.Refusal(reason: "request target \(uri) is neither a path nor an absolute http(s) URI"))
            }
            host = authority
            uri = path
        }
        guard let host else {
            if head.version.major == 1 && head.version.minor == 0 {
                return .success(Target(host: nil, uri: uri))
            }
            return .failure(RequestTarget.Refusal(reason: "an HTTP/1.1 request needs a Host field"))
        }
        guard HostName.isValidField(host) else {
            return .failure(RequestTarget.Refusal(reason: "invalid Host \(host)"))
        }
        return .success(Target(host: host, uri: uri))
    }
}

import NIOCore

/// The request head a backend receives from an HTTP/1.x client on the lean path, written as bytes
/// from the client's scanned head, without making a String of any field. HTTP/2 writes its
/// backend head by the same rules from nghttp2's fields (`H2StreamExchange.completeHead`), and
/// both take the framing from `ForwardedRequest.writeFraming`.
///
/// Field lines the backend gets are the client's own bytes, in their order, less: hop-by-hop
/// fields and the ones `Connection` names (never `Host`), the framing fields, `Expect`, the
/// client's `X-Forwarded-*` and `X-Request-Id`. Then the gateway's fields: `Host` when an
/// absolute-form target replaced it, `X-Forwarded-For` (the client's chain plus the client),
/// `-Proto`, `-Host`, `X-Request-Id`, the upgrade it tunnels if any, and the framing it parsed.
public enum ForwardedRequestHead {
    public struct Additions {
        /// The origin-form target when the client sent another form; nil: the client's target.
        public var target: String?
        /// The Host value when it comes from an absolute-form target; nil: the client's field.
        public var host: String?
        public var clientAddress: String
        public var scheme: StaticString
        /// The request's id; valid while `write` runs.
        public var requestID: UnsafeRawBufferPointer
        /// The protocol of an upgrade the gateway tunnels (the client's `Upgrade` value).
        public var upgrade: Range<Int>?
        public var body: ForwardedRequest.Body

        public init(
            target: String? = nil, host: String? = nil, clientAddress: String, scheme: StaticString, requestID: UnsafeRawBufferPointer,
            upgrade: Range<Int>? = nil, body: ForwardedRequest.Body
        ) {
            self.target = target
            self.host = host
            self.clientAddress = clientAddress
            self.scheme = scheme
            self.requestID = requestID
            self.upgrade = upgrade
            self.body = body
        }
    }

    /// Where a scanned HTTP/1.x request goes (RFC 9112 3.2): one valid Host (HTTP/1.0 may have
    /// none); an absolute-form target brings its own, and the backend gets the origin form. The
    /// body framing the backend gets is the one the scanner found.
    public struct Plan: Equatable, Sendable {
        /// The origin-form target when the client sent the absolute form.
        public var target: String?
        /// The Host from an absolute-form target.
        public var host: String?
        public var body: ForwardedRequest.Body
    }

    public static func plan(_ head: HTTP1RequestHead, bytes raw: UnsafeRawBufferPointer) -> Result<Plan, RequestTarget.Refusal> {
        let body: ForwardedRequest.Body =
            switch head.framing {
            case .none, .length(0), .untilClose: .none
            case .length(let count): .length(count)
            case .chunked: .chunked
            }
        let target = raw[head.target]
        if let first = target.first, first != UInt8(ascii: "/"), !(target.count == 1 && first == UInt8(ascii: "*")) {
            let text = String(decoding: target, as: UTF8.self)
            guard let (authority, path) = RequestTarget.absoluteForm(text) else {
                return .failure(.init(reason: "request target \(text) is neither a path nor an absolute http(s) URI"))
            }
            guard HostName.isValidField(authority) else {
                return .failure(.init(reason: "invalid Host \(authority)"))
            }
            return .success(Plan(target: path, host: authority, body: body))
        }
        if let host = head.host {
            guard HostName.isValidField(raw[host]) else {
                return .failure(.init(reason: "invalid Host \(String(decoding: raw[host], as: UTF8.self))"))
            }
        } else if head.minorVersion != 0 {
            return .failure(.init(reason: "an HTTP/1.1 request needs a Host field"))
        }
        return .success(Plan(target: nil, host: nil, body: body))
    }

    /// Writes the head for the request scanned from `bytes` into `out`.
    public static func write(
        _ head: HTTP1RequestHead, fields: [HTTP1Field], bytes: UnsafeRawBufferPointer, additions: Additions,
        into out: inout ByteBuffer
    ) {
        out.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[head.method]))
        out.writeInteger(UInt8(ascii: " "))
        if let target = additions.target {
            out.writeString(target)
        } else {
            out.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[head.target]))
        }
        out.writeStaticString(" HTTP/1.1\r\n")
        var forwardedFor = 0  // how many X-Forwarded-For fields the client sent
        var hostValue: Range<Int>?
        for field in fields {
            switch field.kind {
            case .te, .trailer, .upgrade, .connection, .keepAlive, .proxyConnection, .transferEncoding, .proxyAuthenticate,
                .proxyAuthorization, .contentLength, .expect, .xForwardedHost, .xForwardedProto, .xRequestID:
                continue
            case .xForwardedFor:
                forwardedFor += 1
                continue
            case .host:
                hostValue = field.value
                if additions.host != nil { continue }
            case .other:
                if head.connection.nominatesOthers, isNominated(field.name, fields: fields, bytes: bytes) { continue }
            }
            out.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[field.line]))
        }
        if let host = additions.host {
            writeField(&out, "host: ", host)
        }
        out.writeStaticString("x-forwarded-for: ")
        if forwardedFor > 0 {
            for field in fields where field.kind == .xForwardedFor {
                out.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[field.value]))
                out.writeStaticString(", ")
            }
        }
        out.writeString(additions.clientAddress)
        out.writeStaticString("\r\nx-forwarded-proto: ")
        out.writeStaticString(additions.scheme)
        out.writeStaticString("\r\n")
        if let host = additions.host {
            writeField(&out, "x-forwarded-host: ", host)
        } else if let hostValue {
            out.writeStaticString("x-forwarded-host: ")
            out.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[hostValue]))
            out.writeStaticString("\r\n")
        }
        out.writeStaticString("x-request-id: ")
        out.writeBytes(additions.requestID)
        out.writeStaticString("\r\n")
        if let upgrade = additions.upgrade {
            out.writeStaticString("connection: upgrade\r\nupgrade: ")
            out.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[upgrade]))
            out.writeStaticString("\r\n")
        }
        let method = bytes[head.method]
        ForwardedRequest.writeFraming(
            additions.body,
            lengthRequired: HTTP1Method.equals(method, "POST") || HTTP1Method.equals(method, "PUT") || HTTP1Method.equals(method, "PATCH"),
            into: &out)
    }

    private static func writeField(_ out: inout ByteBuffer, _ prefix: StaticString, _ value: String) {
        out.writeStaticString(prefix)
        out.writeString(value)
        out.writeStaticString("\r\n")
    }

    /// Whether a `Connection` field names the field called `name` (ASCII case-insensitively).
    public static func isNominated(_ name: Range<Int>, fields: [HTTP1Field], bytes: UnsafeRawBufferPointer) -> Bool {
        for field in fields where field.kind == .connection {
            var tokenStart = field.value.lowerBound
            for index in field.value.lowerBound...field.value.upperBound
            where index == field.value.upperBound || bytes[index] == UInt8(ascii: ",") {
                let token = HTTP1Syntax.trimmed(bytes, tokenStart..<index)
                if token.count == name.count,
                    zip(token, name).allSatisfy({ HTTP1Syntax.lower(bytes[$0]) == HTTP1Syntax.lower(bytes[$1]) })
                {
                    return true
                }
                tokenStart = index + 1
            }
        }
        return false
    }
}

/// Which field lines of a backend's response head reach the client (HTTP/1.1 as bytes, HTTP/2 as
/// fields): all but the hop-by-hop ones, those its `Connection` names, and its `X-Request-Id`
/// (the gateway sets the request's own).
public enum ForwardedResponseHead {
    public static func keeps(
        _ field: HTTP1Field, of head: HTTP1ResponseHead, fields: [HTTP1Field], bytes: UnsafeRawBufferPointer
    ) -> Bool {
        switch field.kind {
        case .te, .trailer, .upgrade, .connection, .keepAlive, .proxyConnection, .transferEncoding, .proxyAuthenticate,
            .proxyAuthorization, .xRequestID:
            return false
        case .other:
            return !(head.connection.nominatesOthers && ForwardedRequestHead.isNominated(field.name, fields: fields, bytes: bytes))
        case .host, .contentLength, .expect, .xForwardedFor, .xForwardedHost, .xForwardedProto:
            return true
        }
    }
}

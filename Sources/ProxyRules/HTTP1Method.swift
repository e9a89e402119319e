/// The request methods the gateway passes on from an HTTP/1.x client: the ones llhttp (the
/// parser of NIO, which the gateway used before it scanned heads itself, and of many backends)
/// knows. A backend that cannot parse a method would fail the request or the connection, and the
/// proxy must never forward what a backend parses differently; so any other token gets 501 here.
public enum HTTP1Method {
    static let known: [StaticString] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT", "PURGE", "COPY", "LOCK", "MKCOL", "MOVE",
        "PROPFIND", "PROPPATCH", "SEARCH", "UNLOCK", "BIND", "REBIND", "UNBIND", "ACL", "REPORT", "MKACTIVITY", "CHECKOUT", "MERGE",
        "M-SEARCH", "NOTIFY", "SUBSCRIBE", "UNSUBSCRIBE", "MKCALENDAR", "LINK", "UNLINK", "SOURCE", "QUERY",
    ]

    public static func isKnown(_ method: Slice<UnsafeRawBufferPointer>) -> Bool {
        let bytes = UnsafeRawBufferPointer(rebasing: method)
        for name in known where name.utf8CodeUnitCount == bytes.count {
            if name.withUTF8Buffer({ bytes.elementsEqual($0) }) { return true }
        }
        return false
    }

    /// Whether the method is exactly `name` (methods are case-sensitive).
    public static func equals(_ method: Slice<UnsafeRawBufferPointer>, _ name: StaticString) -> Bool {
        HTTP1Syntax.equalsExactly(method.base, method.startIndex..<method.endIndex, name)
    }

    /// Safe to send twice (RFC 9110 9.2.2), as `HTTPMethod.isIdempotent` says for HTTP/2.
    public static func isIdempotent(_ method: Slice<UnsafeRawBufferPointer>) -> Bool {
        equals(method, "GET") || equals(method, "HEAD") || equals(method, "OPTIONS") || equals(method, "PUT")
            || equals(method, "DELETE")
    }
}

extension HTTP1Field {
    /// Whether the field's name is `lowercase`, ignoring case.
    public func hasName(_ lowercase: StaticString, in bytes: UnsafeRawBufferPointer) -> Bool {
        HTTP1Syntax.equalsIgnoringCase(bytes, name, lowercase)
    }
}

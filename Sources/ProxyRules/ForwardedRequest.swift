import NIOCore

/// The body framing a backend receives, for HTTP/1.1 and HTTP/2 clients alike (the rest of the
/// head is `ForwardedRequestHead`'s for HTTP/1.1, `H2StreamExchange.completeHead`'s for HTTP/2).
///
/// The backend must read exactly the message the gateway read, no more and no less: request
/// smuggling lives in the difference. So the client's `Content-Length` and `Transfer-Encoding`
/// never pass through as they were; the framing is written anew from `Body`.
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

    /// Writes the framing field the backend gets and the head's empty line. `lengthRequired`:
    /// the method is `POST`, `PUT` or `PATCH`, on which some servers want a length even without
    /// a body. One rule for both protocols' heads.
    public static func writeFraming(_ body: Body, lengthRequired: Bool, into out: inout ByteBuffer) {
        switch body {
        case .none:
            if lengthRequired { out.writeStaticString("content-length: 0\r\n") }
        case .length(let count):
            out.writeStaticString("content-length: ")
            out.writeString(String(count))
            out.writeStaticString("\r\n")
        case .chunked:
            out.writeStaticString("transfer-encoding: chunked\r\n")
        }
        out.writeStaticString("\r\n")
    }
}

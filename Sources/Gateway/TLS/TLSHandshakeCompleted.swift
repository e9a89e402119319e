/// Fired by `TLSServerHandler` through `userInboundEventTriggered` once the handshake is done, and
/// before the first plaintext `channelRead`.
///
/// The next handler learns here which protocol the client agreed to (ALPN), and can set up the
/// pipeline for it synchronously in `userInboundEventTriggered`: plaintext that arrived in the same
/// read as the client's Finished is only fired after this event returns, so it reaches the handlers
/// that were just added.
struct TLSHandshakeCompleted: Sendable, Hashable {
    /// The ALPN protocol chosen (`h2`, `http/1.1`), or nil when the client offered none that the
    /// server supports: then HTTP/1.1 is the only thing to speak.
    var alpn: String?
    /// The server name the client asked for (SNI), or nil when it sent none.
    var serverName: String?
    /// The protocol version as OpenSSL names it: `TLSv1.3`, `TLSv1.2`.
    var version: String
    /// The cipher suite as OpenSSL names it, e.g. `TLS_AES_256_GCM_SHA384`.
    var cipher: String
}

/// What can go wrong on one TLS connection; fired through `errorCaught` by `TLSServerHandler`.
enum TLSError: Error, CustomStringConvertible, Sendable, Equatable {
    /// An OpenSSL call failed; `reasons` is the drained error queue, oldest first
    /// (e.g. `handshake` / `SSL routines::unsupported protocol`).
    case openSSL(operation: String, reasons: [String])
    /// The peer ended the TCP connection without sending close_notify first. What it sent last may
    /// have been cut short (a truncation attack looks exactly like this), so the next handler must
    /// not take the end of the byte stream as the end of a message.
    case uncleanShutdown
    /// The peer sent part of a handshake, then closed the connection.
    case eofDuringHandshake
    /// The handler left the pipeline while plaintext writes were still waiting to be encrypted.
    case handlerRemoved

    var description: String {
        switch self {
        case .openSSL(let operation, let reasons):
            return "TLS \(operation) failed: \(reasons.joined(separator: "; "))"
        case .uncleanShutdown:
            return "TLS peer closed the connection without close_notify (the data may be truncated)"
        case .eofDuringHandshake:
            return "TLS peer closed the connection during the handshake"
        case .handlerRemoved:
            return "TLS handler removed before pending writes were encrypted"
        }
    }
}

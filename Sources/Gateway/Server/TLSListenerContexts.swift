import Synchronization

/// The TLS contexts of the TLS listeners, by listener index, swapped whole on reload.
///
/// A new connection takes the context current at its accept; an established one keeps the
/// `SSL` it has (OpenSSL counts the references to its `SSL_CTX`), so a certificate reload never
/// drops a connection.
final class TLSListenerContexts: Sendable {
    let counters = TLSCounters()
    private let contexts: Mutex<[Int: TLSServerContext]>

    init(_ contexts: [Int: TLSServerContext]) {
        self.contexts = Mutex(contexts)
    }

    /// Reads every TLS listener's certificate and key files; the first bad one is the error.
    static func load(_ listeners: [ListenerConfig]) throws(TLSConfigError) -> [Int: TLSServerContext] {
        var contexts: [Int: TLSServerContext] = [:]
        for (index, listener) in listeners.enumerated() {
            guard let tls = listener.tls else { continue }
            contexts[index] = try TLSServerContext(certificates: tls.certificates, alpn: listener.alpn)
        }
        return contexts
    }

    func current(_ index: Int) -> TLSServerContext? {
        contexts.withLock { $0[index] }
    }

    func replace(_ new: [Int: TLSServerContext]) {
        contexts.withLock { $0 = new }
    }
}

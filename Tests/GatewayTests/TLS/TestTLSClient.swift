import COpenSSL
import NIOCore

/// A TLS client stepped by hand over OpenSSL memory BIOs.
///
/// Real clients decide for themselves which bytes go out in which TCP segment; this one lets a
/// test put exactly the bytes it wants into exactly one `channelRead` of an `EmbeddedChannel`
/// (the client's Finished together with its first request, a renegotiation in the middle of a
/// connection), which is where the handler's hard cases are. It does not verify the server.
final class TestTLSClient {
    private let context: OpaquePointer
    private let ssl: OpaquePointer
    private let readBIO: OpaquePointer
    private let writeBIO: OpaquePointer

    /// - Parameters:
    ///   - serverName: sent as SNI when not nil.
    ///   - alpn: protocols offered, in the client's order; none offered when empty.
    ///   - version: the only protocol version the client speaks, e.g. `TLS1_2_VERSION`.
    init(serverName: String? = nil, alpn: [String] = [], version: Int32 = TLS1_3_VERSION) throws {
        guard let context = SSL_CTX_new(TLS_client_method()) else { throw Self.error("SSL_CTX_new") }
        self.context = context
        guard copenssl_SSL_CTX_set_min_proto_version(context, version) == 1,
            copenssl_SSL_CTX_set_max_proto_version(context, version) == 1
        else {
            SSL_CTX_free(context)
            throw Self.error("setting the protocol version")
        }
        guard let ssl = SSL_new(context), let readBIO = BIO_new(BIO_s_mem()), let writeBIO = BIO_new(BIO_s_mem()) else {
            SSL_CTX_free(context)
            throw Self.error("SSL_new")
        }
        SSL_set_bio(ssl, readBIO, writeBIO)
        SSL_set_connect_state(ssl)
        self.ssl = ssl
        self.readBIO = readBIO
        self.writeBIO = writeBIO
        if let serverName {
            _ = copenssl_SSL_set_tlsext_host_name(ssl, serverName)
        }
        if !alpn.isEmpty {
            let wire = alpn.flatMap { [UInt8($0.utf8.count)] + Array($0.utf8) }
            guard SSL_set_alpn_protos(ssl, wire, UInt32(wire.count)) == 0 else { throw Self.error("SSL_set_alpn_protos") }
        }
    }

    deinit {
        SSL_free(self.ssl)
        SSL_CTX_free(self.context)
    }

    /// Gives the client bytes the server sent.
    func receive(_ bytes: ByteBuffer) {
        bytes.withUnsafeReadableBytes { raw in
            var written = 0
            _ = BIO_write_ex(self.readBIO, raw.baseAddress, raw.count, &written)
        }
    }

    /// Everything the client wants to send since the last call (possibly nothing).
    func takeOutput() -> ByteBuffer {
        var buffer = ByteBuffer()
        let pending = BIO_ctrl_pending(self.writeBIO)
        guard pending > 0 else { return buffer }
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: pending) { space in
            var read = 0
            _ = BIO_read_ex(self.writeBIO, space.baseAddress, pending, &read)
            return read
        }
        return buffer
    }

    /// Runs the handshake as far as the bytes received allow; true once it is complete.
    func handshake() throws -> Bool {
        ERR_clear_error()
        let result = SSL_do_handshake(self.ssl)
        if result == 1 { return true }
        guard SSL_get_error(self.ssl, result) == SSL_ERROR_WANT_READ else { throw Self.error("client handshake") }
        return false
    }

    /// Encrypts `text` into the output.
    func write(_ text: String) throws {
        let bytes = Array(text.utf8)
        var written = 0
        ERR_clear_error()
        guard SSL_write_ex(self.ssl, bytes, bytes.count, &written) == 1 else { throw Self.error("SSL_write") }
    }

    /// What `read` found.
    struct Received {
        var plaintext = ""
        /// The server sent close_notify.
        var closeNotify = false
        /// Why reading stopped when it was not for want of input or close_notify.
        var failure: String?
    }

    /// Decrypts everything received so far.
    func read() -> Received {
        var received = Received()
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            var count = 0
            ERR_clear_error()
            let result = SSL_read_ex(self.ssl, &buffer, buffer.count, &count)
            if result == 1 {
                received.plaintext += String(decoding: buffer[0..<count], as: UTF8.self)
                continue
            }
            switch SSL_get_error(self.ssl, result) {
            case SSL_ERROR_WANT_READ:
                break
            case SSL_ERROR_ZERO_RETURN:
                received.closeNotify = true
            default:
                received.failure = Self.error("SSL_read").description
            }
            return received
        }
    }

    /// Starts a TLS 1.2 renegotiation: the next `handshake()` sends a new ClientHello.
    func renegotiate() throws {
        ERR_clear_error()
        guard SSL_renegotiate(self.ssl) == 1 else { throw Self.error("SSL_renegotiate") }
    }

    /// Queues close_notify.
    func shutdown() {
        ERR_clear_error()
        _ = SSL_shutdown(self.ssl)
    }

    var negotiatedALPN: String? {
        var data: UnsafePointer<UInt8>?
        var length: UInt32 = 0
        SSL_get0_alpn_selected(self.ssl, &data, &length)
        guard let data, length > 0 else { return nil }
        return String(decoding: UnsafeBufferPointer(start: data, count: Int(length)), as: UTF8.self)
    }

    var protocolVersion: String { String(cString: SSL_get_version(self.ssl)) }

    /// The subject of the certificate the server presented, e.g. `CN=a.test`.
    var peerSubject: String? {
        guard let certificate = SSL_get1_peer_certificate(self.ssl) else { return nil }
        defer { X509_free(certificate) }
        guard let line = X509_NAME_oneline(X509_get_subject_name(certificate), nil, 0) else { return nil }
        defer { CRYPTO_free(line, #fileID, #line) }
        return String(cString: line).trimmingPrefix("/").description
    }

    private static func error(_ operation: String) -> TestSupportError {
        var reasons: [String] = []
        var buffer = [CChar](repeating: 0, count: 256)
        while case let code = ERR_get_error(), code != 0 {
            ERR_error_string_n(code, &buffer, buffer.count)
            reasons.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return TestSupportError("\(operation) failed: \(reasons.joined(separator: "; "))")
    }
}

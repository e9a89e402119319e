import COpenSSL
import NIOCore

/// One server-side OpenSSL `SSL` object, fed and drained through memory BIOs; `TLSServerHandler`
/// drives it and keeps it on the channel's event loop.
///
/// Why memory BIOs and not a socket BIO: NIO owns the socket and the event loop, so OpenSSL must
/// never read, write or wait on a file descriptor itself. Ciphertext NIO has read is appended to
/// the read BIO; whatever OpenSSL wants to send lands in the write BIO, from where the handler
/// writes it through the pipeline, where NIO's write promises and writability apply as for any
/// other bytes. A custom BIO could save a copy each way, but memory BIOs are OpenSSL's own, well
/// tested code, and copying is cheap next to the encryption. A memory BIO never runs full, so
/// OpenSSL never asks to wait for writing (`SSL_ERROR_WANT_WRITE`) and never writes half a buffer.
///
/// The `SSL` (and with it both BIOs) is freed exactly once, in `deinit`: only the handler holds
/// this object, and it lets go of it in `handlerRemoved`.
final class TLSConnection {
    /// A completed `SSL_read` hands out at most one record: 16 KiB of plaintext.
    private static let maximumRecordSize = 16 * 1024

    private let ssl: OpaquePointer
    private let readBIO: OpaquePointer
    private let writeBIO: OpaquePointer
    /// Keeps the `SSL_CTX`s, and the object their callbacks point to, alive as long as this `SSL`.
    private let context: TLSServerContext
    /// The buffer of the last read, kept for the next one instead of allocating 16 KiB again for
    /// every record: after one that received nothing ("wants more input"), and after one whose
    /// plaintext was handed out, since the handler above usually copies it and lets it go. Reused
    /// only when nobody else holds it (`clear()` allocates afresh otherwise), as NIO's pooled
    /// receive allocator does.
    private var spareReadBuffer: ByteBuffer?

    init(context: TLSServerContext) throws(TLSError) {
        OpenSSLErrorQueue.clear()
        guard let ssl = context.makeSSL() else {
            throw .openSSL(operation: "SSL_new", reasons: OpenSSLErrorQueue.drainReasons(fallback: "out of memory"))
        }
        guard let readBIO = BIO_new(BIO_s_mem()) else {
            SSL_free(ssl)
            throw .openSSL(operation: "BIO_new", reasons: OpenSSLErrorQueue.drainReasons(fallback: "out of memory"))
        }
        guard let writeBIO = BIO_new(BIO_s_mem()) else {
            BIO_free(readBIO)
            SSL_free(ssl)
            throw .openSSL(operation: "BIO_new", reasons: OpenSSLErrorQueue.drainReasons(fallback: "out of memory"))
        }
        // The SSL owns both BIOs from here on; SSL_free frees them.
        SSL_set_bio(ssl, readBIO, writeBIO)
        SSL_set_accept_state(ssl)
        self.ssl = ssl
        self.readBIO = readBIO
        self.writeBIO = writeBIO
        self.context = context
    }

    deinit {
        SSL_free(self.ssl)
    }

    // MARK: Ciphertext in and out

    /// Hands ciphertext read from the network to OpenSSL.
    func receive(_ ciphertext: ByteBuffer) throws(TLSError) {
        guard ciphertext.readableBytes > 0 else { return }
        OpenSSLErrorQueue.clear()
        let accepted = ciphertext.withUnsafeReadableBytes { bytes in
            var written = 0
            return BIO_write_ex(self.readBIO, bytes.baseAddress, bytes.count, &written) == 1 && written == bytes.count
        }
        guard accepted else {
            throw .openSSL(operation: "BIO_write", reasons: OpenSSLErrorQueue.drainReasons(fallback: "out of memory"))
        }
    }

    /// Whatever OpenSSL has produced for the network (handshake messages, records, alerts) since
    /// the last call, or nil when it has produced nothing.
    func takeCiphertext(allocator: ByteBufferAllocator) -> ByteBuffer? {
        let pending = BIO_ctrl_pending(self.writeBIO)
        guard pending > 0 else { return nil }
        var buffer = allocator.buffer(capacity: pending)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: pending) { space in
            var read = 0
            // A memory BIO hands out everything it holds; nothing can fail here but a bug.
            return BIO_read_ex(self.writeBIO, space.baseAddress, pending, &read) == 1 ? read : 0
        }
        return buffer
    }

    // MARK: Handshake

    enum HandshakeResult {
        case completed
        /// OpenSSL waits for more of the client's messages.
        case needsInput
        case failed(TLSError)
    }

    func handshake() -> HandshakeResult {
        OpenSSLErrorQueue.clear()
        let result = SSL_do_handshake(self.ssl)
        if result == 1 { return .completed }
        let error = SSL_get_error(self.ssl, result)
        if error == SSL_ERROR_WANT_READ { return .needsInput }
        return .failed(self.failure("handshake", error))
    }

    // MARK: Plaintext

    enum ReadResult {
        /// One record's plaintext.
        case data(ByteBuffer)
        /// Everything received so far has been decrypted.
        case needsInput
        /// The peer sent close_notify: no more data will come.
        case closeNotify
        case failed(TLSError)
    }

    /// Decrypts the next record held in the read BIO.
    func read(allocator: ByteBufferAllocator) -> ReadResult {
        var buffer: ByteBuffer
        if var spare = self.spareReadBuffer.take() {
            spare.clear()
            buffer = spare
        } else {
            buffer = allocator.buffer(capacity: Self.maximumRecordSize)
        }
        var result: Int32 = 0
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: Self.maximumRecordSize) { space in
            var read = 0
            OpenSSLErrorQueue.clear()
            result = SSL_read_ex(self.ssl, space.baseAddress, space.count, &read)
            return result == 1 ? read : 0
        }
        if result == 1 {
            self.spareReadBuffer = buffer
            return .data(buffer)
        }

        let error = SSL_get_error(self.ssl, result)
        switch error {
        case SSL_ERROR_WANT_READ:
            self.spareReadBuffer = buffer
            return .needsInput
        case SSL_ERROR_ZERO_RETURN:
            return .closeNotify
        default:
            return .failed(self.failure("read", error))
        }
    }

    /// Encrypts all of `plaintext` into the write BIO.
    func write(_ plaintext: ByteBuffer) throws(TLSError) {
        guard plaintext.readableBytes > 0 else { return }
        var result: Int32 = 0
        plaintext.withUnsafeReadableBytes { bytes in
            var written = 0
            OpenSSLErrorQueue.clear()
            result = SSL_write_ex(self.ssl, bytes.baseAddress, bytes.count, &written)
        }
        if result != 1 {
            throw self.failure("write", SSL_get_error(self.ssl, result))
        }
    }

    /// Queues our close_notify in the write BIO. Only after a completed handshake and without an
    /// earlier fatal error, as OpenSSL requires; the handler's state machine sees to that.
    func shutdown() {
        OpenSSLErrorQueue.clear()
        // 0: sent, the peer's is still to come (we do not wait for it); 1: both done.
        _ = SSL_shutdown(self.ssl)
        OpenSSLErrorQueue.clear()
    }

    // MARK: What was negotiated

    /// Whether the peer's close_notify has been processed.
    var receivedCloseNotify: Bool {
        SSL_get_shutdown(self.ssl) & SSL_RECEIVED_SHUTDOWN != 0
    }

    var negotiatedALPN: String? {
        var data: UnsafePointer<UInt8>?
        var length: UInt32 = 0
        SSL_get0_alpn_selected(self.ssl, &data, &length)
        guard let data, length > 0 else { return nil }
        return String(decoding: UnsafeBufferPointer(start: data, count: Int(length)), as: UTF8.self)
    }

    var serverName: String? {
        SSL_get_servername(self.ssl, TLSEXT_NAMETYPE_host_name).map { String(cString: $0) }
    }

    var protocolVersion: String {
        String(cString: SSL_get_version(self.ssl))
    }

    var cipherName: String {
        guard let cipher = SSL_get_current_cipher(self.ssl), let name = SSL_CIPHER_get_name(cipher) else {
            return "none"
        }
        return String(cString: name)
    }

    // MARK: Errors

    private func failure(_ operation: String, _ error: Int32) -> TLSError {
        .openSSL(operation: operation, reasons: OpenSSLErrorQueue.drainReasons(fallback: Self.describe(error)))
    }

    /// For failures OpenSSL queued no reason for.
    private static func describe(_ error: Int32) -> String {
        switch error {
        case SSL_ERROR_SYSCALL: return "SSL_ERROR_SYSCALL"
        case SSL_ERROR_SSL: return "SSL_ERROR_SSL"
        case SSL_ERROR_WANT_WRITE: return "SSL_ERROR_WANT_WRITE"
        case SSL_ERROR_WANT_X509_LOOKUP: return "SSL_ERROR_WANT_X509_LOOKUP"
        default: return "SSL error \(error)"
        }
    }
}

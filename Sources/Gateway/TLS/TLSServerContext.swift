import COpenSSL

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The TLS settings of one listener: its certificates and ALPN protocols, loaded once and shared by
/// every connection the listener accepts.
///
/// One `SSL_CTX` per certificate. Each connection's `SSL` is made from the first (the default);
/// once the ClientHello names a server (SNI) that another certificate covers, the connection is
/// moved to that certificate's `SSL_CTX`. All contexts get the same protocol settings, so moving
/// only changes the certificate.
///
/// `@unchecked Sendable`, and safe: every stored property is a `let` set in `init` and never
/// changed afterwards, and the `SSL_CTX`s are not configured after `init` either. OpenSSL documents
/// a configured `SSL_CTX` as safe to share between threads for creating `SSL` objects (it is
/// reference counted under its own lock), and the two callbacks below only read the immutable
/// properties. The `SSL_CTX`s are freed in `deinit`, which cannot run while a connection is alive:
/// each `TLSConnection` holds this object strongly, which is also what makes the unretained
/// pointer the callbacks receive valid.
final class TLSServerContext: @unchecked Sendable {
    /// One per certificate, in configuration order; the first is the default.
    private let contexts: [OpaquePointer]
    /// ALPN protocols in server preference order, as bytes.
    private let alpnProtocols: [[UInt8]]

    /// The ALPN protocols offered, in preference order.
    let alpn: [String]
    /// The DNS names (subjectAltName, else the subject's CN) of each certificate's leaf, in
    /// configuration order, for logs.
    let certificateNames: [[String]]

    /// Loads every certificate and key; fails on the first file that cannot be used.
    ///
    /// - Parameters:
    ///   - certificates: the first is served to clients that send no server name, or one that no
    ///     certificate covers; the others are chosen by SNI, first match wins.
    ///   - alpn: protocols in the server's order of preference, e.g. `["h2", "http/1.1"]`. When
    ///     the client offers none of them the handshake goes on without ALPN.
    init(certificates: [TLSCertificateFiles], alpn: [String]) throws(TLSConfigError) {
        guard !certificates.isEmpty else { throw .noCertificates }
        for name in alpn where !(1...255).contains(name.utf8.count) {
            throw .invalidALPN(name)
        }

        var contexts: [OpaquePointer] = []
        do {
            for files in certificates {
                contexts.append(try Self.makeContext(files))
            }
        } catch {
            contexts.forEach { SSL_CTX_free($0) }
            throw error
        }
        self.contexts = contexts
        self.alpnProtocols = alpn.map { Array($0.utf8) }
        self.alpn = alpn
        self.certificateNames = contexts.map { Self.names(of: SSL_CTX_get0_certificate($0)) }

        // The callbacks find this object through an unretained pointer: see the type's comment
        // for why it outlives every SSL that can call them.
        let unretainedSelf = Unmanaged.passUnretained(self).toOpaque()
        for context in contexts {
            SSL_CTX_set_alpn_select_cb(context, Self.alpnSelectCallback, unretainedSelf)
        }
        // Every SSL starts on the default context, so only it needs the servername callback.
        _ = copenssl_SSL_CTX_set_tlsext_servername_callback(contexts[0], Self.serverNameCallback)
        _ = copenssl_SSL_CTX_set_tlsext_servername_arg(contexts[0], unretainedSelf)
    }

    deinit {
        for context in self.contexts {
            SSL_CTX_free(context)
        }
    }

    /// A handler for one new connection; `counters` is usually shared by the whole listener.
    func makeHandler(counters: TLSCounters) -> TLSServerHandler {
        TLSServerHandler(context: self, counters: counters)
    }

    /// A new server-side `SSL` on the default context, or nil when OpenSSL cannot allocate one.
    func makeSSL() -> OpaquePointer? {
        SSL_new(self.contexts[0])
    }

    // MARK: Loading

    private static func makeContext(_ files: TLSCertificateFiles) throws(TLSConfigError) -> OpaquePointer {
        // Checked first, because OpenSSL's own message for a missing file is an indirect one.
        try Self.checkReadable(files.cert, role: .certificate)
        try Self.checkReadable(files.key, role: .key)

        OpenSSLErrorQueue.clear()
        guard let context = SSL_CTX_new(TLS_server_method()) else {
            throw .openSSL(operation: "SSL_CTX_new", reasons: OpenSSLErrorQueue.drainReasons(fallback: "out of memory"))
        }
        var configured = false
        defer {
            if !configured { SSL_CTX_free(context) }
        }

        OpenSSLErrorQueue.clear()
        guard copenssl_SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION) == 1,
            copenssl_SSL_CTX_set_max_proto_version(context, TLS1_3_VERSION) == 1
        else {
            throw .openSSL(
                operation: "setting TLS 1.2 to 1.3",
                reasons: OpenSSLErrorQueue.drainReasons(fallback: "refused")
            )
        }
        // Renegotiation (TLS 1.2) lets a client make the server redo expensive handshakes on an
        // open connection and has a history of attacks; nothing a gateway serves needs it.
        // Compression leaks plaintext lengths (CRIME) and is off in OpenSSL 3 builds anyway.
        _ = SSL_CTX_set_options(context, copenssl_SSL_OP_NO_RENEGOTIATION() | copenssl_SSL_OP_NO_COMPRESSION())
        // Give the ~34 KiB of record buffers back while a connection is idle: a gateway holds many
        // idle keep-alive connections, and memory per connection is what limits how many.
        _ = copenssl_SSL_CTX_set_mode(context, Int(SSL_MODE_RELEASE_BUFFERS))
        // Ciphers and groups stay OpenSSL's (and the system configuration's) defaults: they are
        // maintained by people whose job that is.

        OpenSSLErrorQueue.clear()
        guard SSL_CTX_use_certificate_chain_file(context, files.cert) == 1 else {
            throw .cannotLoad(
                .certificate,
                path: files.cert,
                reasons: OpenSSLErrorQueue.drainReasons(fallback: "no certificate found")
            )
        }

        OpenSSLErrorQueue.clear()
        guard SSL_CTX_use_PrivateKey_file(context, files.key, SSL_FILETYPE_PEM) == 1 else {
            let errors = OpenSSLErrorQueue.drain()
            // OpenSSL checks the key against the certificate already loaded while loading it.
            if errors.contains(where: { Self.isKeyMismatch($0.code) }) {
                throw .keyMismatch(key: files.key, certificate: files.cert)
            }
            let reasons = errors.isEmpty ? ["no private key found"] : errors.map(\.text)
            throw .cannotLoad(.key, path: files.key, reasons: reasons)
        }

        OpenSSLErrorQueue.clear()
        guard SSL_CTX_check_private_key(context) == 1 else {
            // A key of another type (an RSA key for an EC certificate) loads into its own slot
            // and only fails here.
            OpenSSLErrorQueue.clear()
            throw .keyMismatch(key: files.key, certificate: files.cert)
        }
        configured = true
        return context
    }

    private static func checkReadable(_ path: String, role: TLSConfigError.FileRole) throws(TLSConfigError) {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw .unreadable(role, path: path, reason: String(cString: strerror(errno)))
        }
        defer { close(fd) }
        // A directory opens fine, and OpenSSL would then only say it found no PEM in it.
        var info = stat()
        if fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFDIR {
            throw .unreadable(role, path: path, reason: String(cString: strerror(EISDIR)))
        }
    }

    private static func isKeyMismatch(_ code: UInt) -> Bool {
        ERR_GET_LIB(code) == ERR_LIB_X509 && ERR_GET_REASON(code) == X509_R_KEY_VALUES_MISMATCH
    }

    /// The DNS names of a leaf certificate: its subjectAltName DNS entries, or its subject CN when
    /// it has none (what `X509_check_host` would match, too).
    private static func names(of certificate: OpaquePointer?) -> [String] {
        guard let certificate else { return [] }
        var names: [String] = []
        if let altNames = copenssl_X509_subject_alt_names(certificate) {
            defer { GENERAL_NAMES_free(altNames) }
            for index in 0..<copenssl_GENERAL_NAMES_count(altNames) {
                if let name = copenssl_GENERAL_NAMES_dns_name(altNames, index) {
                    names.append(Self.string(name))
                }
            }
        }
        if names.isEmpty, let subject = X509_get_subject_name(certificate) {
            let index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1)
            if index >= 0, let entry = X509_NAME_get_entry(subject, index),
                let data = X509_NAME_ENTRY_get_data(entry)
            {
                names.append(Self.string(data))
            }
        }
        return names
    }

    private static func string(_ asn1: UnsafePointer<ASN1_STRING>) -> String {
        guard let bytes = ASN1_STRING_get0_data(asn1) else { return "" }
        return String(decoding: UnsafeBufferPointer(start: bytes, count: Int(ASN1_STRING_length(asn1))), as: UTF8.self)
    }

    // MARK: Callbacks (run inside SSL_do_handshake, on the connection's event loop)

    /// SNI: moves the connection to the first certificate whose leaf covers the requested name.
    private static let serverNameCallback: copenssl_servername_callback = { ssl, alert, arg in
        guard let ssl, let arg else { return SSL_TLSEXT_ERR_OK }
        let server = Unmanaged<TLSServerContext>.fromOpaque(arg).takeUnretainedValue()
        return server.selectCertificate(ssl: ssl, alert: alert)
    }

    private func selectCertificate(ssl: OpaquePointer, alert: UnsafeMutablePointer<Int32>?) -> Int32 {
        guard let name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) else {
            return SSL_TLSEXT_ERR_OK  // no SNI: the default certificate
        }
        for context in self.contexts {
            guard let leaf = SSL_CTX_get0_certificate(context) else { continue }
            // Length 0: the name is NUL-terminated. No partial wildcards (`w*.example.com`).
            guard X509_check_host(leaf, name, 0, UInt32(X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS), nil) == 1 else {
                continue
            }
            if context != self.contexts[0] {
                guard SSL_set_SSL_CTX(ssl, context) != nil else {
                    alert?.pointee = SSL_AD_INTERNAL_ERROR
                    return SSL_TLSEXT_ERR_ALERT_FATAL
                }
            }
            return SSL_TLSEXT_ERR_OK
        }
        // Nothing covers the name: the default certificate, and the name is not acknowledged.
        return SSL_TLSEXT_ERR_NOACK
    }

    /// ALPN: the first of the server's protocols that the client also offers.
    private static let alpnSelectCallback: SSL_CTX_alpn_select_cb_func = {
        _, out, outLength, offered, offeredLength, arg in
        guard let out, let outLength, let offered, let arg else { return SSL_TLSEXT_ERR_NOACK }
        let server = Unmanaged<TLSServerContext>.fromOpaque(arg).takeUnretainedValue()
        let clientList = UnsafeBufferPointer(start: offered, count: Int(offeredLength))
        guard let chosen = TLSServerContext.selectALPN(preference: server.alpnProtocols, offered: clientList) else {
            return SSL_TLSEXT_ERR_NOACK  // go on without ALPN: HTTP/1.1
        }
        // Points into the client's list, which OpenSSL keeps until it has copied the choice.
        out.pointee = offered + chosen.lowerBound
        outLength.pointee = UInt8(chosen.count)
        return SSL_TLSEXT_ERR_OK
    }

    /// Where in `offered` (ALPN wire format: length-prefixed names) the first protocol of
    /// `preference` appears, or nil when the two lists share none.
    ///
    /// The server's order decides, not the client's: the server knows which of its protocols is
    /// cheaper to serve. A malformed list is read up to where it breaks.
    static func selectALPN(preference: [[UInt8]], offered: UnsafeBufferPointer<UInt8>) -> Range<Int>? {
        var offeredRanges: [Range<Int>] = []
        var index = 0
        while index < offered.count {
            let length = Int(offered[index])
            let start = index + 1
            guard length > 0, start + length <= offered.count else { break }
            offeredRanges.append(start..<(start + length))
            index = start + length
        }
        for wanted in preference {
            if let match = offeredRanges.first(where: { offered[$0].elementsEqual(wanted) }) {
                return match
            }
        }
        return nil
    }
}

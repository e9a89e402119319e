/// A certificate chain and its private key, as PEM files on disk.
struct TLSCertificateFiles: Sendable, Hashable {
    /// The leaf certificate, optionally followed by its intermediates.
    var cert: String
    var key: String
}

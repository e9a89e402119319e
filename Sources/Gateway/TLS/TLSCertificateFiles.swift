/// Where one certificate and its private key live on disk, both PEM.
///
/// Paths rather than loaded bytes, so that every error about them can name the file the operator
/// has to fix. `cert` may hold the whole chain, leaf first: a server that sends its leaf alone
/// makes clients that lack the intermediate fail verification.
struct TLSCertificateFiles: Sendable, Hashable {
    /// PEM certificate file: the leaf, then any intermediates.
    var cert: String
    /// PEM private key file matching the leaf (unencrypted: nobody is there to type a passphrase).
    var key: String
}

/// Why the TLS configuration cannot be used, worded for the operator who has to fix it: every case
/// names the file concerned and carries OpenSSL's own reason, so that "cannot load" can be told
/// apart from "wrong file" or "permission denied" without a debugger.
enum TLSConfigError: Error, CustomStringConvertible, Sendable, Equatable {
    /// Which of the two files of a `TLSCertificateFiles` an error is about.
    enum FileRole: String, Sendable, Equatable {
        case certificate
        case key
    }

    /// The list of certificates was empty: a TLS listener needs at least its default certificate.
    case noCertificates
    /// An ALPN protocol name that cannot go on the wire (1 to 255 bytes).
    case invalidALPN(String)
    /// The file cannot be opened; `reason` is the system's (`No such file or directory`, ...).
    case unreadable(FileRole, path: String, reason: String)
    /// The file was read but OpenSSL could not use it: not PEM, wrong kind of object, encrypted.
    case cannotLoad(FileRole, path: String, reasons: [String])
    /// Both files load, but the key is not the certificate's.
    case keyMismatch(key: String, certificate: String)
    /// Anything else OpenSSL refused while building a context (allocation, protocol settings).
    case openSSL(operation: String, reasons: [String])

    var description: String {
        switch self {
        case .noCertificates:
            return "TLS: no certificates configured; at least one certificate and key are needed"
        case .invalidALPN(let name):
            return "TLS ALPN protocol \"\(name)\" is invalid: a protocol name must be 1 to 255 bytes"
        case .unreadable(let role, let path, let reason):
            return "TLS \(role.rawValue) \(path): cannot read: \(reason)"
        case .cannotLoad(let role, let path, let reasons):
            return "TLS \(role.rawValue) \(path): cannot load: \(reasons.joined(separator: "; "))"
        case .keyMismatch(let key, let certificate):
            return "TLS key \(key) does not match certificate \(certificate)"
        case .openSSL(let operation, let reasons):
            return "TLS setup failed in \(operation): \(reasons.joined(separator: "; "))"
        }
    }
}

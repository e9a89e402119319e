import COpenSSL
import Foundation

/// The SHA-256 of an admin token: what the configuration stores and what a presented token is
/// compared with. Tokens themselves are never stored or logged.
///
/// OpenSSL is linked for TLS already, so its digest, its constant-time comparison and its
/// random generator serve here instead of a second crypto library.
struct TokenDigest: Sendable, Equatable, CustomStringConvertible {
    /// 32 bytes.
    let bytes: [UInt8]

    init?(bytes: [UInt8]) {
        guard bytes.count == 32 else { return nil }
        self.bytes = bytes
    }

    /// 64 hexadecimal digits, either case.
    init?(hex: String) {
        let digits = Array(hex.utf8)
        guard digits.count == 64 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(32)
        var index = 0
        while index < 64 {
            guard let high = Self.nibble(digits[index]), let low = Self.nibble(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        self.bytes = bytes
    }

    /// The digest of `token` as presented (its UTF-8 bytes, nothing trimmed).
    init(of token: some StringProtocol) {
        var input = Array(token.utf8)
        var output = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        let ok = input.withUnsafeMutableBytes { inputBuffer in
            output.withUnsafeMutableBytes { outputBuffer in
                EVP_Digest(
                    inputBuffer.baseAddress, inputBuffer.count, outputBuffer.baseAddress!.assumingMemoryBound(to: UInt8.self),
                    &length, EVP_sha256(), nil)
            }
        }
        // EVP_Digest of SHA-256 on memory fails only if OpenSSL cannot allocate its context;
        // a gateway that cannot hash cannot check any token either.
        precondition(ok == 1 && length == 32, "SHA-256 failed in OpenSSL")
        self.bytes = output
    }

    /// Lower-case hex, as `gateway admin-token` prints it for the configuration.
    var hex: String {
        let digits = Array("0123456789abcdef".unicodeScalars)
        var text = ""
        text.unicodeScalars.reserveCapacity(64)
        for byte in bytes {
            text.unicodeScalars.append(digits[Int(byte >> 4)])
            text.unicodeScalars.append(digits[Int(byte & 0x0F)])
        }
        return text
    }

    var description: String { hex }

    /// Compares in time that does not depend on where the two differ, so a client timing the
    /// answers learns nothing about a stored hash.
    func matches(_ other: TokenDigest) -> Bool {
        bytes.withUnsafeBytes { a in
            other.bytes.withUnsafeBytes { b in CRYPTO_memcmp(a.baseAddress, b.baseAddress, 32) == 0 }
        }
    }

    /// HMAC-SHA-256 of `message` under `key`: what signs the page's session cookies, so any
    /// worker that has the key (the keeper hands the same one to each) can check them.
    static func hmac(key: [UInt8], _ message: String) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        let bytes = Array(message.utf8)
        let result = key.withUnsafeBytes { keyBuffer in
            bytes.withUnsafeBytes { messageBuffer in
                output.withUnsafeMutableBytes { outputBuffer in
                    HMAC(
                        EVP_sha256(), keyBuffer.baseAddress, Int32(keyBuffer.count),
                        messageBuffer.baseAddress?.assumingMemoryBound(to: UInt8.self), messageBuffer.count,
                        outputBuffer.baseAddress!.assumingMemoryBound(to: UInt8.self), &length)
                }
            }
        }
        precondition(result != nil && length == 32, "HMAC-SHA-256 failed in OpenSSL")
        return output
    }

    /// Constant-time equality of two byte strings of any length (false when lengths differ).
    static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count, !a.isEmpty else { return false }
        return a.withUnsafeBytes { x in b.withUnsafeBytes { y in CRYPTO_memcmp(x.baseAddress, y.baseAddress, a.count) == 0 } }
    }

    /// `count` bytes from OpenSSL's CSPRNG (seeded from the kernel).
    static func randomBytes(_ count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let ok = bytes.withUnsafeMutableBytes { RAND_bytes($0.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(count)) }
        precondition(ok == 1, "OpenSSL's random generator failed")
        return bytes
    }

    /// A new token: 256 random bits, URL-safe base64 without padding (43 characters) behind a
    /// `gw_` prefix that makes a leaked one easy to find in a secret scanner.
    static func newToken() -> String {
        "gw_" + base64URL(randomBytes(32))
    }

    /// URL-safe base64 without padding (RFC 4648 section 5): session ids and tokens travel in
    /// headers and cookies, where `+`, `/` and `=` would need quoting.
    static func base64URL(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    private static func nibble(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

import Foundation
import Testing

@testable import Gateway

/// Loading certificates: what an operator gets told when a file is wrong, and what is loaded when
/// all is right.
@Suite final class TLSServerContextTests {
    let directory: String

    init() throws {
        self.directory = try TestCertificate.makeTemporaryDirectory()
    }

    deinit {
        TestCertificate.removeDirectory(self.directory)
    }

    static func certificates() throws -> (TLSCertificateFiles, TLSCertificateFiles) {
        let shared = try TestCertificate.shared()
        return (shared.a, shared.b)
    }

    @Test func loadsCertificatesAndReportsTheirNames() throws {
        let a = try TestCertificate.generate(commonName: "a.test", altNames: ["a.test", "www.a.test"], in: self.directory)
        let b = try TestCertificate.generate(commonName: "b.test", altNames: [], in: self.directory)
        let context = try TLSServerContext(certificates: [a, b], alpn: ["h2", "http/1.1"])
        #expect(context.certificateNames == [["a.test", "www.a.test"], ["b.test"]])
        #expect(context.alpn == ["h2", "http/1.1"])
    }

    @Test func anEmptyListIsRefused() {
        #expect(throws: TLSConfigError.noCertificates) {
            try TLSServerContext(certificates: [], alpn: [])
        }
    }

    @Test func aMissingFileIsNamed() throws {
        let (a, _) = try Self.certificates()
        let missing = self.directory + "/nope.pem"
        let error = try #require(throws: TLSConfigError.self) {
            try TLSServerContext(certificates: [TLSCertificateFiles(cert: missing, key: a.key)], alpn: [])
        }
        #expect(error == .unreadable(.certificate, path: missing, reason: "No such file or directory"))
        #expect(error.description == "TLS certificate \(missing): cannot read: No such file or directory")

        let missingKey = self.directory + "/nope.key"
        let keyError = try #require(throws: TLSConfigError.self) {
            try TLSServerContext(certificates: [a, TLSCertificateFiles(cert: a.cert, key: missingKey)], alpn: [])
        }
        #expect(keyError.description == "TLS key \(missingKey): cannot read: No such file or directory")

        let directoryError = try #require(throws: TLSConfigError.self) {
            try TLSServerContext(certificates: [TLSCertificateFiles(cert: self.directory, key: a.key)], alpn: [])
        }
        #expect(directoryError.description == "TLS certificate \(self.directory): cannot read: Is a directory")
    }

    @Test func garbageIsNamedWithOpenSSLsReason() throws {
        let (a, _) = try Self.certificates()
        let garbage = self.directory + "/garbage.pem"
        try "this is not PEM\n".write(toFile: garbage, atomically: true, encoding: .utf8)

        let certError = try #require(throws: TLSConfigError.self) {
            try TLSServerContext(certificates: [TLSCertificateFiles(cert: garbage, key: a.key)], alpn: [])
        }
        #expect(certError.description.hasPrefix("TLS certificate \(garbage): cannot load: "))
        #expect(certError.description.contains("PEM routines::no start line"))

        let keyError = try #require(throws: TLSConfigError.self) {
            try TLSServerContext(certificates: [TLSCertificateFiles(cert: a.cert, key: garbage)], alpn: [])
        }
        // OpenSSL 3 reads keys through its decoders, which word it differently.
        #expect(keyError.description.hasPrefix("TLS key \(garbage): cannot load: "))
        #expect(keyError.description.contains("DECODER routines::unsupported"))

        // A key where the certificate should be is not a certificate either.
        let swapped = try #require(throws: TLSConfigError.self) {
            try TLSServerContext(certificates: [TLSCertificateFiles(cert: a.key, key: a.cert)], alpn: [])
        }
        #expect(swapped.description.hasPrefix("TLS certificate \(a.key): cannot load: "))
    }

    @Test func aKeyOfAnotherCertificateIsAMismatch() throws {
        let (a, b) = try Self.certificates()
        let error = try #require(throws: TLSConfigError.self) {
            try TLSServerContext(certificates: [a, TLSCertificateFiles(cert: b.cert, key: a.key)], alpn: [])
        }
        #expect(error == .keyMismatch(key: a.key, certificate: b.cert))
        #expect(error.description == "TLS key \(a.key) does not match certificate \(b.cert)")
    }

    @Test func alpnNamesMustFitOnTheWire() throws {
        let (a, _) = try Self.certificates()
        #expect(throws: TLSConfigError.invalidALPN("")) {
            try TLSServerContext(certificates: [a], alpn: ["h2", ""])
        }
    }

    @Test func alpnFollowsTheServersPreference() {
        let preference = [Array("h2".utf8), Array("http/1.1".utf8)]
        func select(_ offered: [String]) -> String? {
            let wire = offered.flatMap { [UInt8($0.utf8.count)] + Array($0.utf8) }
            return wire.withUnsafeBufferPointer { buffer in
                TLSServerContext.selectALPN(preference: preference, offered: buffer).map {
                    String(decoding: buffer[$0], as: UTF8.self)
                }
            }
        }
        #expect(select(["http/1.1", "h2"]) == "h2")
        #expect(select(["spdy/3", "http/1.1"]) == "http/1.1")
        #expect(select(["spdy/3"]) == nil)
        #expect(select([]) == nil)
        // A list whose last length runs past its end is read up to there.
        let broken: [UInt8] = [8] + Array("http/1.1".utf8) + [9, 0x68]
        let chosen = broken.withUnsafeBufferPointer { TLSServerContext.selectALPN(preference: preference, offered: $0) }
        #expect(chosen == 1..<9)
    }
}

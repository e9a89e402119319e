import Foundation

@testable import Gateway

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Self-signed certificates for TLS tests, made by the system's `openssl` at test time: nothing
/// secret or expiring is checked in, and each test gets its own files.
enum TestCertificate {
    /// A P-256 key and a certificate for `commonName` with `altNames` as DNS subjectAltNames,
    /// valid for two days, written to `directory` as `<commonName>.pem` and `<commonName>.key`.
    static func generate(commonName: String, altNames: [String], in directory: String) throws -> TLSCertificateFiles {
        let base = directory + "/" + commonName.replacingOccurrences(of: "/", with: "_")
        let files = TLSCertificateFiles(cert: base + ".pem", key: base + ".key")
        var arguments = [
            "req", "-x509",
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "2",
            "-subj", "/CN=\(commonName)",
            "-keyout", files.key,
            "-out", files.cert,
        ]
        if !altNames.isEmpty {
            arguments += ["-addext", "subjectAltName=" + altNames.map { "DNS:\($0)" }.joined(separator: ",")]
        }
        try Self.runOpenSSL(arguments, log: base + ".log")
        return files
    }

    /// A new empty directory under the system's temporary directory.
    static func makeTemporaryDirectory() throws -> String {
        var template = Array((URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("gateway-tls-XXXXXX").path).utf8CString)
        guard let made = mkdtemp(&template) else {
            throw TestSupportError("mkdtemp: \(String(cString: strerror(errno)))")
        }
        return String(cString: made)
    }

    /// Removes a directory made by `makeTemporaryDirectory`, with everything in it.
    static func removeDirectory(_ path: String) {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Runs `/usr/bin/openssl` and waits (at most 20 s) for it to succeed.
    ///
    /// Its output goes to a file rather than a pipe: a child spawned at the same moment by another
    /// test could inherit a pipe's write end and keep it open.
    private static func runOpenSSL(_ arguments: [String], log: String) throws {
        guard FileManager.default.createFile(atPath: log, contents: nil), let output = FileHandle(forWritingAtPath: log) else {
            throw TestSupportError("cannot create \(log)")
        }
        defer { try? output.close() }

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = output
        process.standardError = output
        try process.run()

        let deadline = ContinuousClock.now + .seconds(20)
        while process.isRunning {
            if ContinuousClock.now >= deadline {
                process.terminate()
                process.waitUntilExit()
                throw TestSupportError("openssl \(arguments.joined(separator: " ")) did not finish within 20 s")
            }
            usleep(2_000)
        }
        guard process.terminationStatus == 0 else {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            throw TestSupportError(
                "openssl \(arguments.joined(separator: " ")) exited with \(process.terminationStatus):\n\(text)"
            )
        }
    }
}

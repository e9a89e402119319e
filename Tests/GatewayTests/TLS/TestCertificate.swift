import Foundation
import Synchronization

@testable import Gateway

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Self-signed certificates for TLS tests, made by the system's `openssl` at test time: nothing
/// secret or expiring is checked in.
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
        try Self.runOpenSSL(arguments)
        return files
    }

    /// The two certificates most TLS tests serve, made once per test process (starting `openssl`
    /// for every test would add a burst of processes to a suite that runs in parallel with
    /// timing-sensitive end-to-end tests): `a.test`, and `b.test` which also covers `*.b.test`.
    struct Shared: Sendable {
        let a: TLSCertificateFiles
        let b: TLSCertificateFiles
    }

    static func shared() throws -> Shared {
        try Self.sharedResult.get()
    }

    private static let sharedResult: Result<Shared, TestSupportError> = {
        do {
            let directory = try Self.makeTemporaryDirectory()
            Self.sharedDirectory.withLock { $0 = directory }
            // Removed when the test process exits; nothing else uses the directory.
            atexit {
                if let directory = TestCertificate.sharedDirectory.withLock({ $0 }) {
                    TestCertificate.removeDirectory(directory)
                }
            }
            return .success(
                Shared(
                    a: try Self.generate(commonName: "a.test", altNames: ["a.test"], in: directory),
                    b: try Self.generate(commonName: "b.test", altNames: ["b.test", "*.b.test"], in: directory)
                )
            )
        } catch let error as TestSupportError {
            return .failure(error)
        } catch {
            return .failure(TestSupportError("\(error)"))
        }
    }()

    private static let sharedDirectory = Mutex<String?>(nil)

    /// Fails with what to install when a client program the TLS tests run is missing (a fresh
    /// Debian has libssl-dev for building, but not necessarily these).
    static func requireTool(_ path: String, package: String) throws {
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw TestSupportError("the TLS tests need \(path): apt-get install -y \(package)")
        }
    }

    /// A new empty directory under the system's temporary directory.
    static func makeTemporaryDirectory() throws -> String {
        let base = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("gateway-tls-XXXXXX")
        var template = Array(base.path.utf8CString)
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
    /// Through `ChildProcess` rather than Foundation's `Process`: on Linux, `Process` learns that
    /// its child exited from the end of a socketpair that is not close-on-exec, so a child that
    /// another test spawns at the same moment inherits it, and `Process` then reports `openssl`
    /// running (and `waitUntilExit` waits) until that other child exits. `ChildProcess` reaps its
    /// own pid and makes its pipes close-on-exec under a lock.
    private static func runOpenSSL(_ arguments: [String]) throws {
        try Self.requireTool("/usr/bin/openssl", package: "openssl")
        // `ChildProcess` tells a child's exit status only asynchronously, and callers are
        // synchronous: a shell runs openssl (its arguments passed as "$@", never parsed as shell
        // text) and prints the status.
        let marker = "openssl exit status "
        let child = try ChildProcess(
            executable: "/bin/sh",
            arguments: ["-c", "\"$0\" \"$@\"; echo \"\(marker)$?\"", "/usr/bin/openssl"] + arguments
        )
        let deadline = ContinuousClock.now + .seconds(20)
        while true {
            if let line = child.stdoutLines.last(where: { $0.hasPrefix(marker) }) {
                guard line == marker + "0" else {
                    throw TestSupportError("openssl \(arguments.joined(separator: " ")) failed\n\(child.outputDescription)")
                }
                return
            }
            if ContinuousClock.now >= deadline {
                child.killAndReap()
                throw TestSupportError(
                    "openssl \(arguments.joined(separator: " ")) did not finish within 20 s\n\(child.outputDescription)"
                )
            }
            // Key generation takes milliseconds.
            usleep(2_000)
        }
    }
}

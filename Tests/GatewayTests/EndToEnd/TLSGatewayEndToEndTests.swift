import Foundation
import Testing

@testable import Gateway

/// A gateway with a TLS listener (two certificates, chosen by SNI) beside a cleartext one,
/// driven by curl, nghttp and `openssl s_client`.
@Suite struct TLSGatewayEndToEndTests {
    struct Setup {
        let h: GatewayHarness
        let certificates: String
        var tlsPort: Int { h.listenerPorts[1] }
        func url(_ path: String) -> String { "https://127.0.0.1:\(tlsPort)\(path)" }
    }

    func start() async throws -> Setup {
        let directory = try TestCertificate.makeTemporaryDirectory()
        let a = try TestCertificate.generate(commonName: "a.test", altNames: ["a.test"], in: directory)
        let b = try TestCertificate.generate(commonName: "b.test", altNames: ["b.test", "*.b.test"], in: directory)
        let yaml = """
            admin: {listen: {admin}}
            shutdown_timeout: 10s
            listeners:
              - listen: {listen}
                protocols: [http1, h2c]
              - listen: {listen}
                tls:
                  certificates:
                    - {cert: \(a.cert), key: \(a.key)}
                    - {cert: \(b.cert), key: \(b.key)}
            deployments:
              - name: shop
                backends: {backends}
            """
        let h = try await GatewayHarness(yaml: yaml)
        #expect(h.listenerPorts.count == 2)
        return Setup(h: h, certificates: directory)
    }

    /// The subject of the certificate the gateway presents for `serverName`.
    func subject(_ s: Setup, serverName: String?) async throws -> String {
        var arguments = ["s_client", "-connect", "127.0.0.1:\(s.tlsPort)"]
        if let serverName { arguments += ["-servername", serverName] } else { arguments += ["-noservername"] }
        let run = try await ExternalTool.run("openssl", arguments)
        return run.stdout.first { $0.hasPrefix("subject=") } ?? "(no subject)\n\(run.output)"
    }

    @Test func alpnChoosesH2OrHTTP1AndBackendsSeeHTTPS() async throws {
        let s = try await start()
        defer { TestCertificate.removeDirectory(s.certificates) }
        for (flag, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
            let run = try await ExternalTool.run(
                "curl", ["-sSk", flag, "-w", "\n%{http_version}", s.url("/headers")])
            #expect(run.stdout.last == version, "\(run.output)")
            #expect(run.output.contains(#""x-forwarded-proto":["https"]"#), "\(run.output)")
        }
        let h2 = try await ExternalTool.run("openssl", ["s_client", "-connect", "127.0.0.1:\(s.tlsPort)", "-alpn", "h2,http/1.1"])
        #expect(h2.output.contains("ALPN protocol: h2"), "\(h2.output)")
        let none = try await ExternalTool.run("openssl", ["s_client", "-connect", "127.0.0.1:\(s.tlsPort)", "-alpn", "spdy/3"])
        #expect(none.output.contains("No ALPN negotiated"), "\(none.output)")
        // TLS 1.1 is refused and counted.
        let old = try await ExternalTool.run("openssl", ["s_client", "-connect", "127.0.0.1:\(s.tlsPort)", "-tls1_1"])
        #expect(old.status != 0)
        let stats = try await s.h.waitForStats("TLS counters") { stats in
            ((stats["tls"] as? [String: Any])?["handshake_failures"] as? Int ?? 0) >= 1
        }
        let tls = stats["tls"] as? [String: Any] ?? [:]
        #expect(tls["handshakes"] as? Int == 4, "\(tls)")
        #expect((tls["alpn"] as? [String: Any])?["h2"] as? Int == 2, "\(tls)")
        #expect((stats["protocols"] as? [String: Any]).flatMap { $0["h2"] as? [String: Any] }?["requests"] as? Int == 1)
    }

    @Test func sniPicksTheCertificateAndUnknownNamesGetTheDefault() async throws {
        let s = try await start()
        defer { TestCertificate.removeDirectory(s.certificates) }
        #expect(try await subject(s, serverName: "b.test").contains("CN = b.test"))
        #expect(try await subject(s, serverName: "www.b.test").contains("CN = b.test"))
        #expect(try await subject(s, serverName: "a.test").contains("CN = a.test"))
        #expect(try await subject(s, serverName: "elsewhere.test").contains("CN = a.test"))
        #expect(try await subject(s, serverName: nil).contains("CN = a.test"))
    }

    @Test func reloadSwapsCertificatesWithoutDroppingConnectionsAndRefusesABadOne() async throws {
        let s = try await start()
        defer { TestCertificate.removeDirectory(s.certificates) }
        // A request in flight on a TLS HTTP/2 connection made with the old certificate.
        let slow = try ExternalTool.start("nghttp", ["-v", s.url("/sleep?ms=3000")])
        _ = try await s.h.waitForActive(1)

        // Renewed files at the same paths.
        let renewed = try TestCertificate.generate(commonName: "a2.test", altNames: ["a.test"], in: s.certificates)
        let a = s.certificates + "/a.test"
        try FileManager.default.removeItem(atPath: a + ".pem")
        try FileManager.default.removeItem(atPath: a + ".key")
        try FileManager.default.copyItem(atPath: renewed.cert, toPath: a + ".pem")
        try FileManager.default.copyItem(atPath: renewed.key, toPath: a + ".key")
        let reload = try await s.h.adminJSON(.POST, "/reload")
        #expect(reload.status == 200, "\(reload.json)")
        #expect(String(describing: reload.json["changes"]).contains("TLS certificates of listener"), "\(reload.json)")
        #expect(try await subject(s, serverName: "a.test").contains("CN = a2.test"))

        #expect(try await slow.waitForExit(timeout: .seconds(15)) == 0)
        try await slow.waitForOutputToEnd()
        #expect(slow.stdoutLines.contains { $0.contains(":status: 200") }, "\(slow.stdoutLines.joined(separator: "\n"))")

        // A broken certificate file: the reload is refused with its name; the running one stays.
        try "not a certificate\n".write(toFile: a + ".pem", atomically: true, encoding: .utf8)
        let refused = try await s.h.adminJSON(.POST, "/reload")
        #expect(refused.status == 400)
        let message = String(describing: refused.json)
        #expect(message.contains(a + ".pem") && message.contains("certificate"), "\(message)")
        #expect(try await subject(s, serverName: "a.test").contains("CN = a2.test"))
        let still = try await ExternalTool.run("curl", ["-sSk", "--http2", "-o", "/dev/null", "-w", "%{http_code}", s.url("/")])
        #expect(still.stdout == ["200"])
    }

    @Test func aBadCertificateStopsTheStartAndNamesTheFile() async throws {
        let directory = try TestCertificate.makeTemporaryDirectory()
        defer { TestCertificate.removeDirectory(directory) }
        let good = try TestCertificate.generate(commonName: "a.test", altNames: ["a.test"], in: directory)
        let other = try TestCertificate.generate(commonName: "b.test", altNames: ["b.test"], in: directory)
        let config = directory + "/gateway.yaml"
        // The key of another certificate.
        try """
        admin: {listen: 127.0.0.1:0}
        listeners:
          - listen: 127.0.0.1:0
            tls: {cert: \(good.cert), key: \(other.key)}
        deployments:
          - name: shop
            backends: [127.0.0.1:9]
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let run = try ChildProcess.gateway(["run", "--config", config])
        #expect(try await run.waitForExit(timeout: .seconds(10)) != 0)
        try await run.waitForOutputToEnd()
        let output = run.stderrLines.joined(separator: "\n")
        #expect(output.contains("TLS key \(other.key) does not match certificate \(good.cert)"), "\(output)")
    }
}

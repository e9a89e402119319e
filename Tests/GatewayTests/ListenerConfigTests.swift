import Testing

@testable import Gateway

@Suite struct ListenerConfigTests {
    private static let deployments = """
        deployments:
          - name: app
            backends: [127.0.0.1:9001]
        """

    private func parse(_ head: String) throws -> GatewayConfig {
        try ConfigLoader.parse(yaml: head + "\n" + Self.deployments, source: "/etc/gw/gateway.yaml")
    }

    private func error(_ head: String) -> ConfigError? {
        do {
            _ = try parse(head)
            return nil
        } catch {
            return error as? ConfigError
        }
    }

    @Test func listenIsOneCleartextHTTP1Listener() throws {
        let config = try parse("listen: 127.0.0.1:8080")
        #expect(config.listeners == [ListenerConfig(listen: HostPort(host: "127.0.0.1", port: 8080), protocols: [.http1], tls: nil)])
    }

    @Test func listenersWithProtocolsAndTLS() throws {
        let config = try parse(
            """
            listeners:
              - listen: 127.0.0.1:8080
                protocols: [http1, h2c]
              - listen: 127.0.0.1:8443
                tls: {cert: certs/site.pem, key: /keys/site.key}
              - listen: 127.0.0.1:8444
                protocols: [http1]
                tls:
                  certificates:
                    - {cert: a.pem, key: a.key}
                    - {cert: b.pem, key: b.key}
            """
        )
        #expect(config.listeners.count == 3)
        #expect(config.listen == HostPort(host: "127.0.0.1", port: 8080))
        #expect(config.listeners[0].protocols == [.http1, .h2c])
        #expect(config.listeners[0].tls == nil)
        #expect(config.listeners[1].protocols == [.h2, .http1])
        #expect(config.listeners[1].alpn == ["h2", "http/1.1"])
        #expect(config.listeners[1].tls?.certificates == [TLSCertificateFiles(cert: "/etc/gw/certs/site.pem", key: "/keys/site.key")])
        #expect(config.listeners[2].alpn == ["http/1.1"])
        #expect(config.listeners[2].tls?.certificates.map(\.cert) == ["/etc/gw/a.pem", "/etc/gw/b.pem"])
    }

    @Test func badListenersAreNamed() throws {
        let cases: [(String, String, String)] = [
            ("admin: {listen: 127.0.0.1:9901}", "", "give `listen` (one HTTP/1.1 address) or `listeners`"),
            ("listen: 127.0.0.1:1\nlisteners: []", "", "give `listen` or `listeners`, not both"),
            ("listeners: []", "listeners", "expected at least one listener"),
            (
                "listeners:\n  - listen: 127.0.0.1:1\n    protocols: [http1, h3]", "listeners[0].protocols[1]",
                "unknown protocol \"h3\"; expected http1, h2c or h2"
            ),
            (
                "listeners:\n  - listen: 127.0.0.1:1\n    protocols: [h2]", "listeners[0].protocols[0]",
                "h2 is HTTP/2 over TLS and needs `tls`; cleartext HTTP/2 is h2c"
            ),
            (
                "listeners:\n  - listen: 127.0.0.1:1\n    protocols: [h2c]\n    tls: {cert: a, key: b}",
                "listeners[0].protocols[0]", "h2c is HTTP/2 without TLS; a TLS listener offers HTTP/2 as h2"
            ),
            (
                "listeners:\n  - listen: 127.0.0.1:1\n  - listen: 127.0.0.1:1", "listeners[1].listen",
                "listeners[0] already listens on 127.0.0.1:1"
            ),
            ("listeners:\n  - listen: 127.0.0.1:1\n    tls: {cert: a.pem}", "listeners[0].tls", "missing required key \"key\""),
            (
                "listeners:\n  - listen: 127.0.0.1:1\n    tls: {cert: a, key: b, certificates: []}", "listeners[0].tls",
                "give `cert` and `key`, or `certificates`, not both"
            ),
            (
                "listeners:\n  - listen: 127.0.0.1:9901\nadmin: {listen: 127.0.0.1:9901}", "admin.listen",
                "the admin API cannot listen on 127.0.0.1:9901 too: the proxy listens there"
            ),
        ]
        for (yaml, keyPath, message) in cases {
            let error = try #require(self.error(yaml), "\(yaml)")
            #expect(error.keyPath == keyPath, "\(yaml)")
            #expect(error.message == message, "\(yaml)")
        }
    }
}

import Foundation
import Testing

@testable import Gateway

/// TLS termination on real sockets, against the clients operators use: `openssl s_client` and
/// `curl`. The server has two certificates, `a.test` (the default) and `b.test`, and prefers `h2`
/// to `http/1.1`.
@Suite(.timeLimit(.minutes(1))) final class TLSEndToEndTests {
    let directory: String
    let server: TLSTestServer

    init() async throws {
        self.directory = try TestCertificate.makeTemporaryDirectory()
        let certificates = try TestCertificate.shared()
        let context = try TLSServerContext(certificates: [certificates.a, certificates.b], alpn: ["h2", "http/1.1"])
        self.server = try await TLSTestServer.start(context: context)
    }

    deinit {
        TestCertificate.removeDirectory(self.directory)
    }

    /// Runs `openssl s_client` against the server with stdin at EOF, so that it ends the
    /// connection (with close_notify) as soon as the handshake is done, and returns its exit status
    /// and everything it printed.
    func sClient(_ arguments: [String]) async throws -> (status: Int32, output: String) {
        let child = try ChildProcess(
            executable: "/usr/bin/openssl",
            arguments: ["s_client", "-connect", "127.0.0.1:\(self.server.port)"] + arguments
        )
        let status = try await child.waitForExit(timeout: .seconds(10))
        try await child.waitForOutputToEnd()
        return (status, child.outputDescription)
    }

    @Test func tls13WithSNIAndALPN() async throws {
        let (status, output) = try await self.sClient(["-servername", "b.test", "-alpn", "h2,http/1.1"])
        #expect(status == 0, "\(output)")
        #expect(output.contains("New, TLSv1.3"), "\(output)")
        #expect(output.contains("ALPN protocol: h2"), "\(output)")
        #expect(output.contains("subject=CN = b.test"), "\(output)")

        try await self.server.waitForCounters("one h2 handshake") { $0.handshakesCompleted == 1 && $0.alpnH2 == 1 }
        let handshake = try #require(self.server.log.handshakes.first)
        #expect(handshake.serverName == "b.test")
        #expect(handshake.alpn == "h2")
        #expect(handshake.version == "TLSv1.3")
    }

    @Test func tls12WithHTTP11Only() async throws {
        let (status, output) = try await self.sClient(["-tls1_2", "-servername", "a.test", "-alpn", "http/1.1"])
        #expect(status == 0, "\(output)")
        #expect(output.contains("New, TLSv1.2"), "\(output)")
        #expect(output.contains("ALPN protocol: http/1.1"), "\(output)")
        #expect(output.contains("subject=CN = a.test"), "\(output)")
        try await self.server.waitForCounters("one http/1.1 handshake") { $0.alpnHTTP11 == 1 }
        #expect(self.server.log.handshakes.first?.version == "TLSv1.2")
    }

    @Test func unknownServerNameAndNoALPNGetTheDefaults() async throws {
        let (status, output) = try await self.sClient(["-servername", "other.test"])
        #expect(status == 0, "\(output)")
        #expect(output.contains("No ALPN negotiated"), "\(output)")
        #expect(output.contains("subject=CN = a.test"), "\(output)")
        try await self.server.waitForCounters("one handshake without ALPN") { $0.alpnNone == 1 }
        #expect(self.server.log.handshakes.first?.serverName == "other.test")
    }

    @Test func tls11IsRefusedAndCounted() async throws {
        // SECLEVEL=0: OpenSSL 3's own client would not even offer TLS 1.1 otherwise.
        let (status, output) = try await self.sClient([
            "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0", "-servername", "a.test",
        ])
        #expect(status != 0)
        #expect(output.contains("alert protocol version"), "\(output)")
        try await self.server.waitForCounters("one failed handshake") { $0.handshakesFailed == 1 }
        #expect(self.server.counters.snapshot().handshakesCompleted == 0)
        #expect(self.server.log.errors.contains { $0.contains("unsupported protocol") }, "\(self.server.log.errors)")
    }

    @Test func aMegabyteRoundTripsThroughCurl() async throws {
        var body = [UInt8](repeating: 0, count: 1 << 20)
        var generator = SystemRandomNumberGenerator()
        body.withUnsafeMutableBytes { bytes in
            for offset in stride(from: 0, to: bytes.count, by: 8) {
                bytes.storeBytes(of: generator.next(), toByteOffset: offset, as: UInt64.self)
            }
        }
        let input = self.directory + "/request.bin"
        let output = self.directory + "/response.bin"
        let headers = self.directory + "/headers.txt"
        try Data(body).write(to: URL(fileURLWithPath: input))

        let port = self.server.port
        try TestCertificate.requireTool("/usr/bin/curl", package: "curl")
        let curl = try ChildProcess(
            executable: "/usr/bin/curl",
            arguments: [
                "-sS", "-k", "--http1.1", "--max-time", "20",
                "--resolve", "a.test:\(port):127.0.0.1",
                // No `Expect: 100-continue`: curl would wait a second for an answer to it.
                "-H", "Expect:",
                "--data-binary", "@\(input)", "-o", output, "-D", headers,
                "https://a.test:\(port)/echo",
            ]
        )
        let status = try await curl.waitForExit(timeout: .seconds(25))
        try await curl.waitForOutputToEnd()
        #expect(status == 0, "\(curl.outputDescription)")

        let echoed = try Data(contentsOf: URL(fileURLWithPath: output))
        #expect(echoed.count == body.count)
        #expect(echoed == Data(body))
        let head = try String(contentsOfFile: headers, encoding: .utf8).lowercased()
        #expect(head.contains("x-tls-alpn: http/1.1"), "\(head)")
        #expect(head.contains("x-tls-sni: a.test"), "\(head)")
        #expect(head.contains("x-tls-version: tlsv1.3"), "\(head)")
    }

    @Test func aCleanCloseAndAnUncleanEOFAreToldApart() async throws {
        // s_client at the end of its input sends close_notify.
        let (status, output) = try await self.sClient(["-servername", "a.test"])
        #expect(status == 0, "\(output)")
        try await self.server.waitForCounters("one clean shutdown") { $0.cleanShutdowns == 1 }
        #expect(self.server.counters.snapshot().uncleanShutdowns == 0)

        // With -ign_eof it stays connected until killed: the kernel ends TCP, nobody sends
        // close_notify.
        let lingering = try ChildProcess(
            executable: "/usr/bin/openssl",
            arguments: ["s_client", "-connect", "127.0.0.1:\(self.server.port)", "-servername", "a.test", "-ign_eof"]
        )
        try await self.server.waitForCounters("the second handshake") { $0.handshakesCompleted == 2 }
        lingering.killAndReap()
        try await self.server.waitForCounters("one unclean shutdown") { $0.uncleanShutdowns == 1 }
        #expect(self.server.counters.snapshot().cleanShutdowns == 1)
        #expect(self.server.log.errors.contains("\(TLSError.uncleanShutdown)"), "\(self.server.log.errors)")
    }
}

import FramingOracle
import Testing

/// The request-framing oracle (also the libFuzzer target's check) over hostile requests and a
/// bounded, seeded stream of mutations of them: what a backend parses from what the gateway
/// forwards is always exactly what the gateway parsed.
@Suite struct FramingOracleTests {
    static let smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    static let chunk = String(smuggled.utf8.count, radix: 16) + "\r\n" + smuggled + "\r\n0\r\n\r\n"

    static let corpus: [String] = [
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk,
        "HEAD / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk,
        "DELETE / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk,
        "OPTIONS * HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk,
        "PURGE / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk,
        "TRACE / HTTP/1.1\r\nHost: x\r\nContent-Length: \(smuggled.utf8.count)\r\n\r\n" + smuggled,
        "POST / HTTP/1.1\r\nHost: x\r\nConnection: content-length\r\nContent-Length: \(smuggled.utf8.count)\r\n\r\n" + smuggled,
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nx-trailer: 1\r\n\r\n",
        "GET http://x/abs?q HTTP/1.1\r\nHost: y\r\n\r\nGET / HTTP/1.0\r\n\r\n",
        "POST / HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi",
    ]

    @Test(arguments: corpus)
    func theBackendParsesWhatTheGatewayParsed(request: String) {
        let (parsed, forwarded, error) = FramingOracle.run(Array(request.utf8))
        #expect(!parsed.isEmpty, "the gateway parsed nothing from \(request.debugDescription)")
        #expect(parsed == forwarded, "gateway \(parsed), backend \(forwarded)")
        #expect(error == nil)
    }

    /// The oracle has teeth: with NIO's automatic framing (the gateway before the fix), a GET's
    /// chunked body becomes a second request at the backend.
    @Test func theOracleCatchesTheOldFraming() {
        let request = "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + Self.chunk
        let mismatch = FramingOracle.check(Array(request.utf8), legacyFraming: true)
        #expect(mismatch != nil)
        #expect(mismatch?.forwarded.contains { $0.uri == "/smuggled" } == true, "\(String(describing: mismatch))")
    }

    /// 4,000 mutations of the corpus (byte flips, framing tokens inserted, slices cut and
    /// repeated), from a fixed seed so a failure reproduces.
    @Test func seededMutationsNeverDesynchronise() {
        var random = SplitMix64(seed: 0x5EED_F00D)
        let tokens = [
            "\r\n", "Transfer-Encoding: chunked\r\n", "Content-Length: 5\r\n", "Content-Length: 0\r\n",
            "0\r\n\r\n", "Connection: content-length, host\r\n", "Transfer-Encoding: identity\r\n", " ", "\t", "\n",
            "Expect: 100-continue\r\n", "Upgrade: websocket\r\nConnection: upgrade\r\n", ";", "GET / HTTP/1.1\r\n",
        ].map { Array($0.utf8) }
        var failures: [String] = []
        for round in 0..<4000 {
            var bytes = Array(Self.corpus[Int(random.next() % UInt64(Self.corpus.count))].utf8)
            random.mutate(&bytes, tokens: tokens)
            if let mismatch = FramingOracle.check(bytes) {
                failures.append("round \(round): \(String(decoding: bytes, as: UTF8.self).debugDescription): \(mismatch)")
            }
        }
        #expect(failures.isEmpty, "\(failures.prefix(3).joined(separator: "\n"))")
    }
}

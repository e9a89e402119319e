import Foundation
import HeadScannerOracle
import ProxyRules
import Testing

/// The head and chunked-body scanners against NIO's parser (llhttp), through the fuzzer's
/// oracle: over the fuzz corpora, every hostile request of the smuggling tests, classic
/// request-smuggling variants, and a bounded, seeded stream of mutations of them. Whatever the
/// scanners accept, llhttp must read the same way (see `HeadScannerOracle`).
@Suite struct HTTP1HeadScannerDifferentialTests {
    static let smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n"
    static func chunked(_ text: String) -> String {
        String(text.utf8.count, radix: 16) + "\r\n" + text + "\r\n0\r\n\r\n"
    }

    /// Requests the scanners must accept, and llhttp read the same.
    static let accepted: [String] = {
        var cases: [String] = []
        // SmugglingEndToEndTests: a chunked body is a body whatever the method.
        for method in ["GET", "HEAD", "DELETE", "OPTIONS", "PURGE", "POST"] {
            cases.append("\(method) /front HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(smuggled))
        }
        cases += [
            "TRACE /front HTTP/1.1\r\nHost: x\r\nContent-Length: \(smuggled.utf8.count)\r\n\r\n" + smuggled,
            "POST /front HTTP/1.1\r\nHost: shop.example\r\nConnection: content-length, host, x-forwarded-for, x-forwarded-proto, x-forwarded-host\r\n"
                + "Content-Length: \(smuggled.utf8.count)\r\n\r\n" + smuggled,
            "GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /front HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                + chunked("POST /attacker HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n\r\n"),
            // FramingOracleTests' corpus.
            "OPTIONS * HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(smuggled),
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nx-trailer: 1\r\n\r\n",
            "GET http://x/abs?q HTTP/1.1\r\nHost: y\r\n\r\nGET / HTTP/1.0\r\n\r\n",
            "POST / HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi",
            // HTTP1ConformanceEndToEndTests.
            "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nGET /second HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /first HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n",
            "POST /up HTTP/1.0\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc",
            "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
            // Odd but valid.
            "\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: CHUNKED\r\n\r\n00005;a=\"b\\\"c\"\r\nhello\r\n000\r\nA: b\r\nC:\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0005\r\n\r\nhello",
            "POST / HTTP/1.1\r\nHost: x\r\nX: \u{80}\u{FF}\t v \r\n\r\n",
            "M-SEARCH * HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /a%20b?c=d&e#f HTTP/1.1\r\nHost: x\r\n\r\n",
        ]
        return cases
    }()

    /// Requests the scanners must refuse (llhttp may accept some of them; the scanners are the stricter).
    static let refused: [String] = [
        // SmugglingEndToEndTests.
        "POST /front HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" + chunked("abc"),
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc",
        // CL.TE and TE.CL with every obfuscation of Transfer-Encoding in the usual lists.
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\tchunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-encoding: x\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nX: y\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer_Encoding: chunked\r\n\r\n0\r\n\r\n".replacingOccurrences(of: "_", with: "\u{0}"),
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4 \r\nContent-Length: 4\r\n\r\nabcd",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4, 4\r\n\r\nabcd",
        "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\nhello\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nContent-Length: 5\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\nContent-Length: 5\r\n\r\nhello",
        "GET / HTTP/1.1\nHost: x\n\n",
        "GARBAGE\u{1}\r\n\r\n",
        "GET / HTTP/2.0\r\n\r\n",
        // Found by the fuzzer: llhttp stops at the method PRI (HTTP/2's preface) whatever the version.
        "PRI * HTTP/1.1\r\nHost: x\r\n\r\n",
        "PRI / HTTP/1.1\r\n\r\n",
        // Found by the fuzzer: llhttp refuses an HTAB after a Content-Length's digits, and reads
        // `chunked<HTAB>` as another coding.
        "TRACE / HTTP/1.1\r\nHost: x\r\nContent-Length: 35\t\r\n\r\n" + smuggled,
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\t\r\n\r\n0\r\n\r\n",
    ]

    @Test(arguments: accepted)
    func acceptedRequestsReadTheSameInLlhttp(request: String) throws {
        let outcome = HeadScannerOracle.checkRequest(Array(request.utf8))
        switch outcome {
        case .success(let verdict):
            #expect(verdict == .agreed || verdict == .agreedWithRequestLineReplaced, "\(request.debugDescription): \(verdict)")
        case .failure(let mismatch):
            Issue.record("\(mismatch)")
        }
    }

    @Test(arguments: refused)
    func refusedRequestsAreRefused(request: String) throws {
        let outcome = HeadScannerOracle.checkRequest(Array(request.utf8))
        guard case .success(.refused) = outcome else {
            Issue.record("\(request.debugDescription): \(outcome)")
            return
        }
    }

    /// llhttp knows a list of methods; a token it does not know is still compared, behind a
    /// request line llhttp takes.
    @Test func aMethodLlhttpRefusesIsComparedBehindAnotherRequestLine() {
        let outcome = HeadScannerOracle.checkRequest(Array("FROB /x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi".utf8))
        guard case .success(.agreedWithRequestLineReplaced) = outcome else {
            Issue.record("\(outcome)")
            return
        }
    }

    static let responses: [String] = [
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\nT: 1\r\n\r\n",
        "HTTP/1.0 200 OK\r\nServer: s\r\n\r\nuntil the close",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nuntil the close",
        "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
        "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\u{81}\u{5}hello",
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n",
    ]

    /// Found by the fuzzer: a response llhttp reads to the close (`chunked<HTAB>` is not chunked
    /// to it) while the scanner read it chunked; now refused.
    @Test func aResponseChunkedWithATrailingHTABIsRefused() {
        let outcome = HeadScannerOracle.checkResponse(Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\t\r\n\r\n0\r\n\r\n".utf8))
        guard case .success(.refused) = outcome else {
            Issue.record("\(outcome)")
            return
        }
    }

    @Test(arguments: responses)
    func responsesReadTheSameInLlhttp(response: String) throws {
        let outcome = HeadScannerOracle.checkResponse(Array(response.utf8))
        switch outcome {
        case .success(let verdict): #expect(verdict == .agreed, "\(response.debugDescription): \(verdict)")
        case .failure(let mismatch): Issue.record("\(mismatch)")
        }
    }

    /// The fuzz corpora (the request-framing fuzzer's and this one's seeds).
    @Test func theFuzzCorporaAgree() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        var checked = 0
        for folder in ["Fuzz/corpus/request-framing", "Fuzz/HeadScannerFuzz/corpus"] {
            let directory = root.appendingPathComponent(folder)
            for name in try FileManager.default.contentsOfDirectory(atPath: directory.path) {
                let bytes = [UInt8](try Data(contentsOf: directory.appendingPathComponent(name)))
                #expect(HeadScannerOracle.check(bytes) == nil, "\(folder)/\(name): \(String(describing: HeadScannerOracle.check(bytes)))")
                checked += 1
            }
        }
        #expect(checked >= 17)
    }

    /// 3,000 mutations of the cases above (byte flips, framing tokens inserted, slices cut and
    /// repeated), from a fixed seed so a failure reproduces; each read as a request and as a
    /// response.
    @Test func seededMutationsAgree() {
        var random = SplitMix64(seed: 0x4EAD_5CA7)
        let seeds = (Self.accepted + Self.refused + Self.responses).map { Array($0.utf8) }
        let tokens = [
            "\r\n", "Transfer-Encoding: chunked\r\n", "Content-Length: 5\r\n", "Content-Length: 0\r\n", "0\r\n\r\n",
            "Transfer-Encoding: gzip, chunked\r\n", " ", "\t", "\n", "\r", "\u{0}", ";a=\"b\"", "chunked", ",", ":",
            "Connection: upgrade\r\nUpgrade: x\r\n", "5\r\nhello\r\n", "HTTP/1.0", "HTTP/1.1 200 OK\r\n", "\u{7F}", "\u{80}",
        ].map { Array($0.utf8) }
        var failures: [String] = []
        var outcomes: [String: Int] = [:]
        for round in 0..<3000 {
            var bytes = seeds[Int(random.next() % UInt64(seeds.count))]
            random.mutate(&bytes, tokens: tokens)
            switch HeadScannerOracle.checkRequest(bytes) {
            case .failure(let mismatch): failures.append("round \(round): \(mismatch)")
            case .success(let outcome):
                let key: String
                switch outcome {
                case .refused(let error): key = "refused \(error.status)"
                default: key = "\(outcome)"
                }
                outcomes[key, default: 0] += 1
            }
            if case .failure(let mismatch) = HeadScannerOracle.checkResponse(bytes) {
                failures.append("round \(round) as a response: \(mismatch)")
            }
        }
        #expect(failures.isEmpty, "\(failures.count) mismatches: \(failures.prefix(5).joined(separator: "\n"))")
        // The mutations reach every verdict, so the check is not vacuous.
        #expect((outcomes["agreed"] ?? 0) > 100, "\(outcomes)")
        #expect((outcomes["refused 400"] ?? 0) > 100, "\(outcomes)")
    }
}

import Testing

@testable import ProxyRules

/// The one-pass HTTP/1.x head scanner, rule by rule (RFC 9112, and stricter where llhttp or a
/// backend could read a message otherwise).
@Suite struct HTTP1HeadScannerTests {
    struct Scanned {
        var result: HTTP1ScanResult<HTTP1RequestHead>
        var fields: [HTTP1Field]
        var bytes: [UInt8]

        var head: HTTP1RequestHead? {
            if case .complete(let head) = result { return head }
            return nil
        }
        var error: HTTP1ScanError? {
            if case .invalid(let error) = result { return error }
            return nil
        }
        func text(_ range: Range<Int>?) -> String? {
            range.map { String(decoding: bytes[$0], as: UTF8.self) }
        }
        var fieldNames: [String] { fields.map { text($0.name)! } }
        var fieldValues: [String] { fields.map { text($0.value)! } }
    }

    static func request(_ bytes: [UInt8], max: Int = 8192) -> Scanned {
        var fields: [HTTP1Field] = []
        let result = bytes.withUnsafeBytes { HTTP1HeadScanner.scanRequest($0, maxHeadBytes: max, fields: &fields) }
        return Scanned(result: result, fields: fields, bytes: bytes)
    }

    static func request(_ text: String, max: Int = 8192) -> Scanned {
        request(Array(text.utf8), max: max)
    }

    /// The status of a refused request, nil when it is not refused.
    static func status(_ text: String) -> Int? {
        request(text).error?.status
    }

    static func framing(_ fields: String, version: String = "1.1") -> HTTP1BodyFraming? {
        request("POST / HTTP/\(version)\r\nHost: x\r\n\(fields)\r\n").head?.framing
    }

    // MARK: Request line

    @Test func aSimpleRequest() throws {
        let scanned = Self.request("GET /a?b=c HTTP/1.1\r\nHost: shop.example\r\nAccept: */*\r\n\r\nrest")
        let head = try #require(scanned.head)
        #expect(scanned.text(head.method) == "GET")
        #expect(scanned.text(head.target) == "/a?b=c")
        #expect(head.minorVersion == 1)
        #expect(head.length == scanned.bytes.count - 4)
        #expect(head.leadingEmptyLines == 0)
        #expect(head.framing == .none)
        #expect(head.connection == HTTP1Connection())
        #expect(scanned.text(head.host) == "shop.example")
        #expect(head.expectContinue == false)
        #expect(head.upgrade == nil && head.requestID == nil)
        #expect(head.fieldCount == 2)
        #expect(scanned.fieldNames == ["Host", "Accept"])
        #expect(scanned.fields.map(\.kind) == [.host, .other])
        #expect(scanned.fields.map { scanned.text($0.line) } == ["Host: shop.example\r\n", "Accept: */*\r\n"])
    }

    @Test func anHTTP10RequestWithoutFields() throws {
        let head = try #require(Self.request("GET / HTTP/1.0\r\n\r\n").head)
        #expect(head.minorVersion == 0)
        #expect(head.fieldCount == 0)
        #expect(head.host == nil)
        #expect(head.length == 18)
    }

    @Test func emptyLinesBeforeTheRequestLineAreSkippedAndCounted() throws {
        let scanned = Self.request("\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        let head = try #require(scanned.head)
        #expect(head.leadingEmptyLines == 4)
        #expect(scanned.text(head.method) == "GET")
        #expect(head.length == scanned.bytes.count)
    }

    @Test(arguments: ["\nGET / HTTP/1.1\r\n\r\n", "\rGET / HTTP/1.1\r\n\r\n", "\r\n\nGET / HTTP/1.1\r\n\r\n", " GET / HTTP/1.1\r\n\r\n"])
    func onlyCRLFMayComeBeforeTheRequestLine(request: String) {
        #expect(Self.status(request) == 400)
    }

    @Test(arguments: [
        "GET  / HTTP/1.1\r\n\r\n",  // two spaces
        "GET /  HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1 \r\n\r\n",  // space after the version
        "GET\t/ HTTP/1.1\r\n\r\n",
        "GET /\tHTTP/1.1\r\n\r\n",
        " / HTTP/1.1\r\n\r\n",  // no method
        "GET HTTP/1.1\r\n\r\n",  // no target
        "G(T / HTTP/1.1\r\n\r\n",  // not a token
        "GET / http/1.1\r\n\r\n",
        "GET / HTTP/1.1\n\r\n",  // bare LF
        "GET / HTTP/1.1\rX\r\n\r\n",
        "GET / HTTP/1.10\r\n\r\n",
        "GET / HTTP/11.1\r\n\r\n",
        "GET / HTTP/1\r\n\r\n",
        "GET / HTTP/1.x\r\n\r\n",
        "GET / HTTPS/1.1\r\n\r\n",
        "GET / RTSP/1.0\r\n\r\n",
        "GET /\u{7F} HTTP/1.1\r\n\r\n",  // DEL in the target
        "GET /é HTTP/1.1\r\n\r\n",  // obs-text in the target
        "GET /\u{1} HTTP/1.1\r\n\r\n",
    ])
    func malformedRequestLinesAre400(request: String) {
        #expect(Self.status(request) == 400, "\(request.debugDescription): \(Self.request(request).result)")
    }

    @Test(arguments: ["HTTP/1.2", "HTTP/2.0", "HTTP/0.9", "HTTP/3.0", "HTTP/9.9"])
    func otherVersionsAre505(version: String) {
        #expect(Self.status("GET / \(version)\r\nHost: x\r\n\r\n") == 505)
    }

    @Test func thePrefaceOfHTTP2IsRefused() {
        #expect(Self.status("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") == 400)
        // llhttp stops at PRI whatever the version: no HTTP/1.x method.
        #expect(Self.status("PRI * HTTP/1.1\r\nHost: x\r\n\r\n") == 400)
        #expect(Self.status("PRI / HTTP/1.1\r\n\r\n") == 400)
        #expect(Self.request("PRIX / HTTP/1.1\r\n\r\n").head != nil)
        #expect(Self.request("pri / HTTP/1.1\r\n\r\n").head != nil)
    }

    @Test func anyTokenMethodAndVisibleTargetAreTaken() throws {
        let scanned = Self.request("M-SEARCH! *ab:c@d[]{}|~ HTTP/1.1\r\nHost: x\r\n\r\n")
        let head = try #require(scanned.head)
        #expect(scanned.text(head.method) == "M-SEARCH!")
        #expect(scanned.text(head.target) == "*ab:c@d[]{}|~")
    }

    // MARK: Field syntax

    @Test(arguments: [
        "Host : x",  // whitespace before the colon
        "Host\t: x",
        "Ho st: x",
        ": x",  // empty name
        "Ho(st: x",
        "Hóst: x",
        "X: a\u{0}b",  // NUL
        "X: a\u{1}b",
        "X: a\u{7F}b",  // DEL
        "X: a\u{1B}b",
        "X: a\rb",  // bare CR
        "X: a\nb",  // bare LF inside a value
        "X: a\r\n b",  // obs-fold
        "X: a\r\n\tb",
        "Host",  // no colon
    ])
    func malformedFieldLinesAre400(line: String) {
        let request = "GET / HTTP/1.1\r\nHost: h\r\n\(line)\r\n\r\n"
        #expect(Self.status(request) == 400, "\(line.debugDescription): \(Self.request(request).result)")
    }

    @Test func whitespaceBeforeTheFirstFieldIs400() {
        #expect(Self.status("GET / HTTP/1.1\r\n Host: x\r\n\r\n") == 400)
        #expect(Self.status("GET / HTTP/1.1\r\n\tHost: x\r\n\r\n") == 400)
        #expect(Self.request("GET / HTTP/1.1\r\n Host: x\r\n\r\n").error?.reason == "whitespace before the first field")
    }

    @Test func bareLineEndingsAre400() {
        #expect(Self.status("GET / HTTP/1.1\r\nHost: x\n\r\n") == 400)
        #expect(Self.status("GET / HTTP/1.1\r\nHost: x\r\n\n") == 400)
        #expect(Self.status("GET / HTTP/1.1\r\nHost: x\r\n\rX") == 400)
        #expect(Self.status("GET / HTTP/1.1\r\nHost: x\r\r\n\r\n") == 400)
    }

    @Test func valuesAreTrimmedOfOWSAndKeepInnerSpace() throws {
        let scanned = Self.request("GET / HTTP/1.1\r\nHost:x\r\nA: \t one  two \t \r\nB:\r\nC:   \r\nD: é\u{FF}\r\n\r\n")
        #expect(scanned.head != nil)
        #expect(scanned.fieldValues == ["x", "one  two", "", "", "é\u{FF}"])
        #expect(scanned.fields[1].line == 24..<(24 + "A: \t one  two \t \r\n".utf8.count))
        #expect(scanned.fields[2].value.isEmpty)
    }

    @Test func obsTextAndTabsAreValueBytes() throws {
        var bytes = Array("GET / HTTP/1.1\r\nHost: x\r\nX: ".utf8)
        bytes += [0x80, 0x09, 0xFF, 0x21, 0x7E]
        bytes += Array("\r\n\r\n".utf8)
        let scanned = Self.request(bytes)
        #expect(scanned.head != nil)
        #expect(Array(scanned.bytes[scanned.fields[1].value]) == [0x80, 0x09, 0xFF, 0x21, 0x7E])
    }

    @Test func everyControlByteButTabIsRefusedInAValue() {
        for byte in UInt8(0)...0x1F where byte != 0x09 {
            let bytes = Array("GET / HTTP/1.1\r\nX: a".utf8) + [byte] + Array("b\r\n\r\n".utf8)
            #expect(Self.request(bytes).error?.status == 400, "byte \(byte)")
        }
    }

    @Test func everyNonTokenByteIsRefusedInAName() {
        let tchars = Set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)
        for byte in UInt8(0)...0xFF where byte != UInt8(ascii: ":") {
            let bytes = Array("GET / HTTP/1.1\r\nX".utf8) + [byte] + Array("y: 1\r\n\r\n".utf8)
            let scanned = Self.request(bytes)
            if tchars.contains(byte) {
                #expect(scanned.head != nil, "byte \(byte)")
            } else {
                #expect(scanned.error?.status == 400, "byte \(byte)")
            }
        }
    }

    /// Values and targets are skipped eight bytes at a time: a byte to refuse is found at every
    /// offset within and across words, and an allowed byte at any offset does not stop the scan.
    @Test func everyOffsetOfALongValueOrTargetIsChecked() {
        let refusedInValues: [UInt8] = [0x00, 0x01, 0x0A, 0x0D, 0x1F, 0x7F]
        let allowedInValues: [UInt8] = [0x09, 0x20, 0x21, 0x7E, 0x80, 0xFF]
        let refusedInTargets: [UInt8] = [0x00, 0x09, 0x0A, 0x0D, 0x20, 0x7F, 0x80, 0xFF]
        for length in [7, 8, 9, 16, 23, 40] {
            for offset in 0..<length {
                for byte in refusedInValues + allowedInValues {
                    var value = [UInt8](repeating: UInt8(ascii: "v"), count: length)
                    value[offset] = byte
                    let bytes = Array("GET / HTTP/1.1\r\nHost: x\r\nX: v".utf8) + value + Array("v\r\n\r\n".utf8)
                    let scanned = Self.request(bytes)
                    if allowedInValues.contains(byte) {
                        #expect(scanned.head != nil, "value byte \(byte) at \(offset) of \(length)")
                    } else {
                        #expect(scanned.error?.status == 400, "value byte \(byte) at \(offset) of \(length)")
                    }
                }
                for byte in refusedInTargets {
                    var target = [UInt8](repeating: UInt8(ascii: "t"), count: length)
                    target[offset] = byte
                    let bytes = Array("GET /".utf8) + target + Array(" HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
                    let scanned = Self.request(bytes)
                    // SP splits the line: the rest is no version.
                    #expect(scanned.error?.status == 400, "target byte \(byte) at \(offset) of \(length): \(scanned.result)")
                }
            }
        }
        let longTarget = "/" + String(repeating: "a1-._~!$&'()*+,;=:@/?%", count: 10)
        let scanned = Self.request("GET \(longTarget) HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(scanned.text(scanned.head?.target) == longTarget)
    }

    @Test func tcharMatchesRFC9110() {
        let tchars = Set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)
        for byte in UInt8(0)...0xFF {
            #expect(HTTP1Syntax.isTchar(byte) == tchars.contains(byte), "byte \(byte)")
        }
    }

    @Test func fieldsAreAppendedToWhatTheCallerHasAndLeftAloneOtherwise() throws {
        let marker = HTTP1Field(kind: .other, name: 0..<1, value: 0..<1, line: 0..<1)
        var fields = [marker]
        for text in ["GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n", "GET / HTTP/1.1\r\nHost: x\r\nA: b\r\nHost: y\r\n\r\n"] {
            let bytes = Array(text.utf8)
            let result = bytes.withUnsafeBytes { HTTP1HeadScanner.scanRequest($0, maxHeadBytes: 8192, fields: &fields) }
            #expect(fields == [marker], "\(result)")
        }
        let bytes = Array("GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n\r\n".utf8)
        let result = bytes.withUnsafeBytes { HTTP1HeadScanner.scanRequest($0, maxHeadBytes: 8192, fields: &fields) }
        guard case .complete(let head) = result else {
            Issue.record("\(result)")
            return
        }
        #expect(head.fieldCount == 2)
        #expect(fields.count == 3 && fields[0] == marker)
        #expect(fields[1].kind == .host)
    }

    // MARK: Field kinds

    @Test func namesAreClassifiedInAnyCase() {
        let names: [(String, HTTP1FieldKind)] = [
            ("host", .host), ("content-length", .contentLength), ("transfer-encoding", .transferEncoding),
            ("connection", .connection), ("upgrade", .upgrade), ("expect", .expect), ("te", .te), ("trailer", .trailer),
            ("keep-alive", .keepAlive), ("proxy-connection", .proxyConnection), ("proxy-authenticate", .proxyAuthenticate),
            ("proxy-authorization", .proxyAuthorization), ("x-forwarded-for", .xForwardedFor),
            ("x-forwarded-host", .xForwardedHost), ("x-forwarded-proto", .xForwardedProto), ("x-request-id", .xRequestID),
            ("hosts", .other), ("hos", .other), ("x-request-ie", .other), ("content-lengtH2", .other), ("tf", .other),
            ("ContentLength", .other), ("content_length", .other), ("x-forwarded-fox", .other), ("proxy-authorizatio", .other),
            ("keep_alive", .other), ("trailers", .other), ("upgradE", .upgrade), ("a", .other),
        ]
        for (name, kind) in names {
            for spelled in [name, name.uppercased(), String(name.enumerated().map { $0.offset % 2 == 0 ? Character($0.element.uppercased()) : $0.element })] {
                let bytes = Array(spelled.utf8)
                let found = bytes.withUnsafeBytes { HTTP1Syntax.kind(ofName: $0, 0..<bytes.count) }
                #expect(found == kind, "\(spelled)")
            }
        }
    }

    // MARK: Content-Length

    @Test func contentLengthFramesTheBody() {
        #expect(Self.framing("Content-Length: 5\r\n") == .length(5))
        #expect(Self.framing("content-length:5\r\n") == .length(5))
        #expect(Self.framing("Content-Length: \t 12 \r\n") == .length(12))
        #expect(Self.framing("Content-Length: 007\r\n") == .length(7))
        #expect(Self.framing("Content-Length: 0\r\n") == HTTP1BodyFraming.none)
        #expect(Self.framing("Content-Length: 0000\r\n") == HTTP1BodyFraming.none)
        #expect(Self.framing("Content-Length: 9223372036854775807\r\n") == .length(Int.max))
        #expect(Self.framing("") == HTTP1BodyFraming.none)
    }

    @Test(arguments: [
        "Content-Length: +5", "Content-Length: -1", "Content-Length: 5 5", "Content-Length: 0x5", "Content-Length:",
        "Content-Length:  ", "Content-Length: 5,5", "Content-Length: 5, 5", "Content-Length: 1e3", "Content-Length: 5.0",
        "Content-Length: 9223372036854775808", "Content-Length: 99999999999999999999999", "Content-Length: ５",
        "Content-Length: 5\r\nContent-Length: 5", "Content-Length: 5\r\nContent-Length: 6",
        "Content-Length: 0\r\ncontent-length: 0",
        "Content-Length: 5\r\nTransfer-Encoding: chunked", "Transfer-Encoding: chunked\r\nContent-Length: 5",
        "Transfer-Encoding: chunked\r\nContent-Length: 0",
    ])
    func invalidOrAmbiguousContentLengthIs400(fields: String) {
        let request = "POST / HTTP/1.1\r\nHost: x\r\n\(fields)\r\n\r\n"
        #expect(Self.status(request) == 400, "\(fields.debugDescription): \(Self.request(request).result)")
    }

    /// llhttp reads `chunked<HTAB>` as another coding and refuses `5<HTAB>`: in a framing
    /// field an HTAB is taken only in the leading OWS.
    @Test func anHTABInAFramingFieldIsTakenOnlyBeforeTheValue() {
        #expect(Self.framing("Content-Length:\t5\r\n") == .length(5))
        #expect(Self.framing("Transfer-Encoding: \t chunked\r\n") == .chunked)
        #expect(Self.framing("Content-Length: 5  \r\n") == .length(5))
        #expect(Self.framing("Transfer-Encoding: chunked  \r\n") == .chunked)
        for fields in [
            "Content-Length: 5\t", "Content-Length: 5 \t ", "Transfer-Encoding: chunked\t", "Transfer-Encoding: gzip,\tchunked",
            "Transfer-Encoding: chunked \t",
        ] {
            let error = Self.request("POST / HTTP/1.1\r\nHost: x\r\n\(fields)\r\n\r\n").error
            #expect(error == .badRequest("HTAB in a framing field"), "\(fields.debugDescription)")
        }
        #expect(HTTP1HeadScannerResponseTests.status("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\t\r\n\r\n") == 400)
        // Other fields keep their HTABs (trimmed at the ends).
        #expect(Self.request("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\t\r\n\r\n").head?.connection.close == true)
    }

    // MARK: Transfer-Encoding

    @Test func chunkedAloneFramesTheBody() {
        #expect(Self.framing("Transfer-Encoding: chunked\r\n") == .chunked)
        #expect(Self.framing("transfer-encoding: \t CHUNKED  \r\n") == .chunked)
        #expect(Self.framing("Transfer-Encoding: Chunked\r\n") == .chunked)
    }

    @Test(arguments: [
        "Transfer-Encoding: gzip", "Transfer-Encoding: identity", "Transfer-Encoding: chunked, gzip",
        "Transfer-Encoding: chunked, identity", "Transfer-Encoding: chunked, chunked", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip", "Transfer-Encoding: chunked,", "Transfer-Encoding: , chunked",
        "Transfer-Encoding: chunked,,", "Transfer-Encoding:", "Transfer-Encoding: xchunked", "Transfer-Encoding: chunked;a=b",
        "Transfer-Encoding: chunked x", "Transfer-Encoding: \"chunked\"", "Transfer-Encoding: gzip, chunked, chunked",
    ])
    func transferCodingsThatDoNotEndInOneChunkedAre400(fields: String) {
        let request = "POST / HTTP/1.1\r\nHost: x\r\n\(fields)\r\n\r\n"
        #expect(Self.status(request) == 400, "\(fields.debugDescription): \(Self.request(request).result)")
    }

    @Test(arguments: [
        ("Transfer-Encoding: gzip, chunked", "gzip"), ("Transfer-Encoding: identity, chunked", "identity"),
        ("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked", "gzip"), ("Transfer-Encoding: br, gzip, Chunked", "br"),
    ])
    func otherCodingsBeforeChunkedAre501(fields: String, coding: String) throws {
        let error = try #require(Self.request("POST / HTTP/1.1\r\nHost: x\r\n\(fields)\r\n\r\n").error)
        #expect(error.status == 501)
        #expect(error.reason == "transfer coding \(coding) is not supported; only chunked is")
    }

    @Test func transferEncodingInAnHTTP10RequestIs400() {
        #expect(Self.request("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n").error?.status == 400)
        #expect(Self.framing("Content-Length: 3\r\n", version: "1.0") == .length(3))
    }

    @Test func aConnectRequestHasNoBody() throws {
        #expect(Self.status("CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\nContent-Length: 5\r\n\r\n") == 400)
        #expect(Self.status("CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\nTransfer-Encoding: chunked\r\n\r\n") == 400)
        #expect(Self.request("CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\nContent-Length: 0\r\n\r\n").head?.framing == HTTP1BodyFraming.none)
        #expect(Self.request("CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n").head?.framing == HTTP1BodyFraming.none)
    }

    // MARK: Host, Connection, Expect, Upgrade, X-Request-Id

    @Test func twoHostFieldsAre400() {
        #expect(Self.status("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n") == 400)
        #expect(Self.status("GET / HTTP/1.1\r\nHost: a\r\nhOST: b\r\n\r\n") == 400)
        #expect(Self.request("GET / HTTP/1.1\r\nHost:\r\n\r\n").head?.host?.isEmpty == true)
    }

    @Test func connectionTokens() throws {
        func connection(_ fields: String) -> HTTP1Connection? {
            Self.request("GET / HTTP/1.1\r\nHost: x\r\n\(fields)\r\n").head?.connection
        }
        #expect(connection("Connection: close\r\n") == HTTP1Connection(close: true))
        #expect(connection("Connection: Keep-Alive\r\n") == HTTP1Connection(keepAlive: true))
        #expect(connection("Connection: UPGRADE\r\n") == HTTP1Connection(upgrade: true))
        #expect(connection("Connection: \t close \t, ,keep-alive ,  upgrade\r\n") == HTTP1Connection(close: true, keepAlive: true, upgrade: true))
        #expect(connection("Connection: x-secret\r\n") == HTTP1Connection(nominatesOthers: true))
        #expect(connection("Connection: close\r\nConnection: x-a, upgrade\r\n") == HTTP1Connection(close: true, upgrade: true, nominatesOthers: true))
        #expect(connection("Connection: closed\r\n") == HTTP1Connection(nominatesOthers: true))
        #expect(connection("Connection: close upgrade\r\n") == HTTP1Connection(nominatesOthers: true))
        #expect(connection("Connection:\r\n") == HTTP1Connection())
        #expect(connection("Proxy-Connection: close\r\n") == HTTP1Connection())
    }

    @Test func expectContinue() {
        #expect(Self.request("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n").head?.expectContinue == true)
        #expect(Self.request("POST / HTTP/1.1\r\nHost: x\r\nexpect:  100-Continue \r\n\r\n").head?.expectContinue == true)
        #expect(Self.request("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue, x\r\n\r\n").head?.expectContinue == false)
        #expect(Self.request("POST / HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n\r\n").head?.expectContinue == false)
    }

    @Test func upgradeAndRequestID() throws {
        let scanned = Self.request(
            "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade:  websocket \r\nX-Request-Id: a1\r\nx-request-id: b2\r\n\r\n")
        let head = try #require(scanned.head)
        #expect(scanned.text(head.upgrade) == "websocket")
        #expect(scanned.text(head.requestID) == "a1")
        #expect(head.connection.upgrade)
        #expect(Self.status("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: a\r\nUpgrade: b\r\n\r\n") == 400)
    }

    // MARK: Size limit

    @Test func aHeadLargerThanTheLimitIs431() {
        let text = "GET / HTTP/1.1\r\nHost: x\r\nA: \(String(repeating: "a", count: 100))\r\n\r\n"
        let size = text.utf8.count
        #expect(Self.request(text, max: size).head != nil)
        #expect(Self.request(text, max: size - 1).error?.status == 431)
        // Incomplete: as long as no more than the limit is buffered it may still end in time.
        let partial = Array(text.utf8.dropLast(2))
        #expect(Self.request(partial, max: size - 2).result == .incomplete)
        #expect(Self.request(partial, max: size - 3).error?.status == 431)
        #expect(Self.request(String(repeating: "A", count: 100), max: 99).error?.status == 431)
        #expect(Self.request(String(repeating: "A", count: 100), max: 100).result == .incomplete)
        // Empty lines before the request line count.
        #expect(Self.request(String(repeating: "\r\n", count: 60), max: 100).error?.status == 431)
        // An invalid byte within the limit is a 400, not a 431.
        #expect(Self.request("GET / HTTP/1.1\r\nA\u{0}: b\r\n" + String(repeating: "x", count: 200), max: 50).error?.status == 400)
    }

    // MARK: Split input

    static let samples = [
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "\r\nPOST /upload?a=1 HTTP/1.1\r\nHost: shop.example:8080\r\nContent-Length: 11\r\nExpect: 100-continue\r\n"
            + "Connection: keep-alive, x-trace\r\nX-Trace: 1\r\nX-Request-Id: r-1\r\n\r\nhello world",
        "PUT /c HTTP/1.1\r\nhost:x\r\ntransfer-encoding:  chunked\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "OPTIONS * HTTP/1.0\r\nA:\r\nB: \u{80}\t\r\n\r\n",
    ]

    /// Every split point of a request: `.incomplete` until the head is all there, then the same
    /// head and fields as the whole input gives.
    @Test(arguments: samples)
    func everyPrefixIsIncompleteUntilTheHeadEnds(text: String) throws {
        let bytes = Array(text.utf8)
        let whole = Self.request(bytes)
        let head = try #require(whole.head)
        for cut in 0...bytes.count {
            let scanned = Self.request(Array(bytes[..<cut]))
            if cut < head.length {
                #expect(scanned.result == .incomplete, "cut \(cut): \(scanned.result)")
                #expect(scanned.fields.isEmpty)
            } else {
                #expect(scanned.result == whole.result, "cut \(cut)")
                #expect(scanned.fields == whole.fields, "cut \(cut)")
            }
        }
    }

    /// Refusal is final: a prefix is incomplete or refused, never complete, and once a prefix is
    /// refused every longer one is.
    @Test(arguments: [
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nHost : x\r\n\r\n",
        "GET / HTTP/1.2\r\nHost: x\r\n\r\n",
        "GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET /\u{0} HTTP/1.1\r\n\r\n",
    ])
    func aRefusalStaysARefusal(text: String) {
        let bytes = Array(text.utf8)
        let whole = Self.request(bytes)
        #expect(whole.error != nil, "\(whole.result)")
        var refused: HTTP1ScanError?
        for cut in 0...bytes.count {
            let scanned = Self.request(Array(bytes[..<cut]))
            switch scanned.result {
            case .complete: Issue.record("cut \(cut) complete")
            case .incomplete: #expect(refused == nil, "cut \(cut) incomplete after a refusal")
            case .invalid(let error): refused = refused ?? error
            }
        }
        #expect(refused?.status == whole.error?.status)
    }
}

@Suite struct HTTP1HeadScannerResponseTests {
    static func response(_ text: String, max: Int = 8192) -> (HTTP1ScanResult<HTTP1ResponseHead>, [HTTP1Field], [UInt8]) {
        let bytes = Array(text.utf8)
        var fields: [HTTP1Field] = []
        let result = bytes.withUnsafeBytes { HTTP1HeadScanner.scanResponse($0, maxHeadBytes: max, fields: &fields) }
        return (result, fields, bytes)
    }

    static func head(_ text: String) -> HTTP1ResponseHead? {
        if case .complete(let head) = response(text).0 { return head }
        return nil
    }

    static func status(_ text: String) -> Int? {
        if case .invalid(let error) = response(text).0 { return error.status }
        return nil
    }

    @Test func aSimpleResponse() throws {
        let (result, fields, bytes) = Self.response("HTTP/1.1 200 OK fine\r\nContent-Length: 5\r\nServer: s\r\n\r\nhello")
        guard case .complete(let head) = result else {
            Issue.record("\(result)")
            return
        }
        #expect(head.status == 200)
        #expect(head.minorVersion == 1)
        #expect(String(decoding: bytes[head.reason], as: UTF8.self) == "OK fine")
        #expect(head.length == bytes.count - 5)
        #expect(head.framing == .length(5))
        #expect(head.fieldCount == 2)
        #expect(fields.map(\.kind) == [.contentLength, .other])
    }

    @Test func theReasonMayBeEmptyOrLeftOut() {
        #expect(Self.head("HTTP/1.1 204 \r\n\r\n")?.reason.isEmpty == true)
        #expect(Self.head("HTTP/1.1 204\r\n\r\n")?.reason.isEmpty == true)
        #expect(Self.head("HTTP/1.0 404 Not \u{80}Found\t\r\n\r\n")?.status == 404)
    }

    @Test(arguments: [
        "HTTP/1.1 20 OK\r\n\r\n", "HTTP/1.1 2000 OK\r\n\r\n", "HTTP/1.1 099 X\r\n\r\n", "HTTP/1.1  200 OK\r\n\r\n",
        "HTTP/1.1 2x0 OK\r\n\r\n", "HTTP/1.1 200 O\u{0}K\r\n\r\n", "HTTP/1.1 200 OK\n\r\n", "HTTP/1.1 200 OK\r\nA : b\r\n\r\n",
        "http/1.1 200 OK\r\n\r\n", "\r\nHTTP/1.1 200 OK\r\n\r\n", "HTTP/1.1 200 OK\r\n fold\r\n\r\n", "HTTP/1.1\t200 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: ,chunked\r\n\r\n",
        "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nUpgrade: a\r\nUpgrade: b\r\n\r\n",
    ])
    func malformedResponsesAreRefused(text: String) {
        #expect(Self.status(text) == 400, "\(text.debugDescription): \(Self.response(text).0)")
    }

    @Test func otherVersionsAre505() {
        #expect(Self.status("HTTP/2.0 200 OK\r\n\r\n") == 505)
        #expect(Self.status("HTTP/1.2 200 OK\r\n\r\n") == 505)
    }

    @Test func framingFromTheFieldsAlone() {
        #expect(Self.head("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")?.framing == .length(0))
        #expect(Self.head("HTTP/1.1 204 OK\r\nContent-Length: 7\r\n\r\n")?.framing == .length(7))
        #expect(Self.head("HTTP/1.1 200 OK\r\n\r\n")?.framing == .untilClose)
        #expect(Self.head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")?.framing == .chunked)
        #expect(Self.head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")?.framing == .chunked)
        #expect(Self.head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n")?.framing == .untilClose)
        #expect(Self.head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n")?.framing == .untilClose)
        #expect(Self.head("HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n")?.framing == .length(3))
    }

    @Test func connectionAndUpgrade() throws {
        let (result, _, bytes) = Self.response(
            "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\nHost: a\r\nHost: b\r\n\r\n")
        guard case .complete(let head) = result else {
            Issue.record("\(result)")
            return
        }
        #expect(head.connection == HTTP1Connection(close: true, upgrade: true))
        #expect(head.upgrade.map { String(decoding: bytes[$0], as: UTF8.self) } == "websocket")
    }

    @Test func aHeadLargerThanTheLimitIs431() {
        let text = "HTTP/1.1 200 OK\r\nA: \(String(repeating: "a", count: 100))\r\n\r\n"
        #expect(Self.head(text) != nil)
        #expect(Self.response(text, max: text.utf8.count).0 != .incomplete)
        if case .invalid(let error) = Self.response(text, max: text.utf8.count - 1).0 {
            #expect(error.status == 431)
        } else {
            Issue.record("not refused")
        }
    }

    @Test func everyPrefixIsIncompleteUntilTheHeadEnds() throws {
        let text = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nhi"
        let (whole, wholeFields, _) = Self.response(text)
        guard case .complete(let head) = whole else {
            Issue.record("\(whole)")
            return
        }
        let bytes = Array(text.utf8)
        for cut in 0...bytes.count {
            let (result, fields, _) = Self.response(String(decoding: bytes[..<cut], as: UTF8.self))
            if cut < head.length {
                #expect(result == .incomplete, "cut \(cut)")
            } else {
                #expect(result == whole && fields == wholeFields, "cut \(cut)")
            }
        }
    }
}

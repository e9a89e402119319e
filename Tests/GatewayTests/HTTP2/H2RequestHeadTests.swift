import NIOCore
import ProxyRules
import Testing

@testable import Gateway

/// The backend's HTTP/1.1 head written from an HTTP/2 request's fields as nghttp2 hands them
/// over: `ForwardedRequestHead`'s rules, without HTTPHeaders in between.
@Suite struct H2RequestHeadTests {
    func head(_ fields: [(String, String)]) -> H2Session.RequestHead {
        var head = H2Session.RequestHead()
        head.upstream = ByteBufferAllocator().buffer(capacity: 512)  // as the session makes it
        for (name, value) in fields {
            var name = name
            var value = value
            name.withUTF8 { n in value.withUTF8 { v in head.add(name: UnsafeRawBufferPointer(n), value: UnsafeRawBufferPointer(v)) } }
        }
        head.writeRequestLineIfNeeded()
        return head
    }

    func lines(_ head: H2Session.RequestHead, body: ForwardedRequest.Body, id: String = "id-1") -> [String] {
        let bytes = H2StreamExchange.takeCompleteHead(
            head, body: body, clientAddress: "10.0.0.9", scheme: "https", requestID: RequestIDValue(given: id))
        return String(buffer: bytes).components(separatedBy: "\r\n")
    }

    @Test func pseudoFieldsMakeTheRequestLineAndAuthorityIsTheHost() {
        let head = head([
            (":method", "POST"), (":scheme", "https"), (":authority", "example.com"), (":path", "/a?b=1"),
            ("host", "other"), ("accept", "*/*"), ("content-length", "5"),
        ])
        #expect(head.method == "POST" && head.path == "/a?b=1" && head.authority == "example.com" && head.contentLength == 5)
        #expect(
            lines(head, body: .length(5)) == [
                "POST /a?b=1 HTTP/1.1", "host: example.com", "accept: */*", "x-forwarded-for: 10.0.0.9",
                "x-forwarded-proto: https", "x-forwarded-host: example.com", "x-request-id: id-1", "content-length: 5", "", "",
            ])
    }

    @Test func hopByHopFramingAndForwardedFieldsAreDroppedCookiesJoinedChainKept() {
        let head = head([
            (":method", "GET"), (":path", "/"), (":scheme", "http"),
            ("host", "h.example"), ("te", "trailers"), ("cookie", "a=1"), ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-host", "evil"), ("x-forwarded-proto", "http"), ("expect", "100-continue"), ("cookie", "b=2"),
            ("x-request-id", "client-id"), ("trailer", "x-checksum"), ("user-agent", "ua/1"), ("referer", "http://r/"),
            ("proxy-authorization", "secret"), ("x-custom", "v"),
        ])
        #expect(head.host == "h.example" && head.announcesTrailers)
        #expect(head.requestID == "client-id" && head.requestIDCount == 1)
        #expect(head.string(head.userAgent) == "ua/1" && head.string(head.referer) == "http://r/")
        #expect(
            lines(head, body: .none) == [
                "GET / HTTP/1.1", "host: h.example", "user-agent: ua/1", "referer: http://r/", "x-custom: v", "cookie: a=1; b=2",
                "x-forwarded-for: 1.2.3.4, 10.0.0.9", "x-forwarded-proto: https", "x-forwarded-host: h.example",
                "x-request-id: id-1", "", "",
            ])
    }

    @Test func bodilessPostSaysContentLengthZeroAndUnknownLengthGoesChunked() {
        let post = [(":method", "POST"), (":path", "/"), (":authority", "a")]
        #expect(lines(head(post), body: .none).contains("content-length: 0"))
        #expect(lines(head(post), body: .chunked).contains("transfer-encoding: chunked"))
        #expect(!lines(head([(":method", "GET"), (":path", "/"), (":authority", "a")]), body: .none).contains("content-length: 0"))
    }

    @Test func theBackendsHeadIsTheSessionsBufferTakenNotCopied() {
        let taken = head([(":method", "GET"), (":path", "/"), (":authority", "a")])
        let start = taken.upstream.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        let bytes = H2StreamExchange.takeCompleteHead(
            taken, body: .none, clientAddress: "10.0.0.9", scheme: "http", requestID: RequestIDValue(given: "id-1"))
        // The same memory, grown in place (its 512-byte capacity holds the additions), and the
        // head keeps nothing of it.
        #expect(bytes.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) } == start)
        #expect(String(buffer: bytes).hasPrefix("GET / HTTP/1.1\r\nhost: a\r\n"))
        #expect(taken.upstream.readableBytes == 0)
    }

    @Test func trailerSectionsKeepEveryField() {
        var trailers = H2Session.RequestHead()
        trailers.isTrailers = true
        var name = "x-checksum"
        var value = "abc"
        name.withUTF8 { n in value.withUTF8 { v in trailers.add(name: UnsafeRawBufferPointer(n), value: UnsafeRawBufferPointer(v)) } }
        #expect(String(buffer: trailers.upstream) == "x-checksum: abc\r\n")
    }
}

import NIOCore
import ProxyRules
import Testing

@testable import Gateway

/// The reader that frames a backend's response on the lean path, fed whole and a byte at a time.
@Suite struct BackendResponseReaderTests {
    enum Seen: Equatable {
        case head(status: Int, framing: HTTP1BodyFraming)
        case body(String)
        case end(trailers: String?)
    }

    static func read(_ text: String, head: Bool = false, keepChunkFraming: Bool, byteByByte: Bool) throws -> [Seen] {
        var reader = BackendResponseReader(requestIsHead: head, keepChunkFraming: keepChunkFraming, maxHeadBytes: 64 * 1024)
        var scratch: [HTTP1Field] = []
        var seen: [Seen] = []
        let pieces: [ByteBuffer] = byteByByte ? text.utf8.map { ByteBuffer(bytes: [$0]) } : [ByteBuffer(string: text)]
        for piece in pieces {
            try reader.read(piece, scratch: &scratch) { event in
                switch event {
                case .head(let head, _, _, let framing): seen.append(.head(status: head.status, framing: framing))
                case .body(let body): seen.append(.body(String(buffer: body)))
                case .end(let trailers): seen.append(.end(trailers: trailers.map { String(buffer: $0) }))
                }
            }
        }
        // Bodies come in as many pieces as they were read in: join them.
        var joined: [Seen] = []
        for event in seen {
            if case .body(let more) = event, case .body(let before) = joined.last {
                joined[joined.count - 1] = .body(before + more)
            } else {
                joined.append(event)
            }
        }
        return joined
    }

    static let chunked = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nx-sum: 1\r\n\r\n"

    @Test(arguments: [false, true])
    func aChunkedBodyPassesThroughOrAsItsPayload(byteByByte: Bool) throws {
        #expect(
            try Self.read(Self.chunked, keepChunkFraming: true, byteByByte: byteByByte) == [
                .head(status: 200, framing: .chunked), .body("5\r\nhello\r\n0\r\nx-sum: 1\r\n\r\n"), .end(trailers: nil),
            ])
        let payload = try Self.read(Self.chunked, keepChunkFraming: false, byteByByte: byteByByte)
        #expect(payload.first == .head(status: 200, framing: .chunked))
        #expect(payload.dropFirst().first == .body("hello"))
        // The trailer section's field lines, however the reads split them (HTTP/2 sends them).
        #expect(payload.last == .end(trailers: "x-sum: 1\r\n"))
    }

    @Test(arguments: [false, true])
    func interimHeadsComeBeforeTheFinalOne(byteByByte: Bool) throws {
        let text = "HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
        #expect(
            try Self.read(text, keepChunkFraming: true, byteByByte: byteByByte) == [
                .head(status: 103, framing: .none), .head(status: 200, framing: .length(2)), .body("ok"), .end(trailers: nil),
            ])
    }

    @Test func aHeadResponseHasNoBodyWhateverItsLength() throws {
        let text = "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n"
        #expect(
            try Self.read(text, head: true, keepChunkFraming: true, byteByByte: false) == [
                .head(status: 200, framing: .none), .end(trailers: nil),
            ])
    }

    @Test func bytesAfterTheResponseAreAnError() throws {
        let text = "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"
        #expect(throws: BackendResponseReader.Failure.self) {
            try Self.read(text, keepChunkFraming: true, byteByByte: false)
        }
    }
}

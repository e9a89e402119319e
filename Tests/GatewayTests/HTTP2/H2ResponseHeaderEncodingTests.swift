import CNghttp2
import NIOCore
import Testing

@testable import Gateway

/// How response fields are HPACK-encoded: the request id, new in every response, is a
/// never-indexed literal, so the dynamic table keeps the fields that repeat.
@Suite struct H2ResponseHeaderEncodingTests {
    typealias T = H2SessionTests

    struct Field: Equatable {
        var name: String
        var value: String
        var neverIndexed: Bool
    }

    /// Decodes the header blocks in order with one HPACK decoder, as a client does.
    static func decode(_ blocks: [[UInt8]]) throws -> [[Field]] {
        var inflater: OpaquePointer?
        try #require(nghttp2_hd_inflate_new(&inflater) == 0)
        defer { nghttp2_hd_inflate_del(inflater) }
        return try blocks.map { block in
            var fields: [Field] = []
            var offset = 0
            while true {
                var nv = nghttp2_nv()
                var flags: Int32 = 0
                let used = block.withUnsafeBufferPointer { bytes in
                    nghttp2_hd_inflate_hd2(inflater, &nv, &flags, bytes.baseAddress! + offset, bytes.count - offset, 1)
                }
                try #require(used >= 0, "HPACK decoding failed: \(used)")
                offset += used
                if flags & Int32(NGHTTP2_HD_INFLATE_EMIT.rawValue) != 0 {
                    fields.append(
                        Field(
                            name: String(decoding: UnsafeBufferPointer(start: nv.name, count: nv.namelen), as: UTF8.self),
                            value: String(decoding: UnsafeBufferPointer(start: nv.value, count: nv.valuelen), as: UTF8.self),
                            neverIndexed: nv.flags & UInt8(NGHTTP2_NV_FLAG_NO_INDEX.rawValue) != 0))
                }
                if flags & Int32(NGHTTP2_HD_INFLATE_FINAL.rawValue) != 0 {
                    nghttp2_hd_inflate_end_headers(inflater)
                    break
                }
                if used == 0, flags & Int32(NGHTTP2_HD_INFLATE_EMIT.rawValue) == 0 { break }
            }
            return fields
        }
    }

    /// Two streams answered as `H2StreamExchange` answers (fields from the backend's head, then
    /// the request id) and one the gateway answers itself; their HEADERS blocks in order.
    func responseBlocks() throws -> [[UInt8]] {
        let session = try H2Session(settings: H2Session.Settings(), allocator: ByteBufferAllocator())
        try session.receive(
            ByteBuffer(
                bytes: T.preface + T.frame(type: 0x4, stream: 0) + T.postHeaders(stream: 1, endStream: true)
                    + T.postHeaders(stream: 3, endStream: true) + T.postHeaders(stream: 5, endStream: true)))
        var scratch = ByteBuffer()
        session.produceOutput(into: &scratch)
        _ = session.takeEvents()
        for (stream, id) in [(Int32(1), "req-1"), (3, "req-2")] {
            let ok = "content-type".withContiguousUTF8 { name in
                "text/plain".withContiguousUTF8 { value in
                    RequestID.headerName.withContiguousUTF8 { idName in
                        id.withContiguousUTF8 { idValue in
                            session.submitResponse(streamID: stream, status: 200, hasBody: false) { list in
                                list.append(name: name, value: value)
                                list.appendNeverIndexed(name: idName, value: idValue)
                            }
                        }
                    }
                }
            }
            #expect(ok)
        }
        #expect(session.submitResponse(streamID: 5, status: 503, headers: ["content-type": "text/plain", "x-request-id": "req-3"], hasBody: false))
        var out = ByteBuffer()
        session.produceOutput(into: &out)
        return T.frames(out).filter { $0.type == 0x1 }.map(\.payload)
    }

    @Test func theRequestIDIsNeverIndexedAndTheOtherFieldsAre() throws {
        let blocks = try responseBlocks()
        try #require(blocks.count == 3)
        let decoded = try Self.decode(blocks)
        #expect(decoded[0] == [
            Field(name: ":status", value: "200", neverIndexed: false),
            Field(name: "content-type", value: "text/plain", neverIndexed: false),
            Field(name: "x-request-id", value: "req-1", neverIndexed: true),
        ])
        #expect(decoded[1].last == Field(name: "x-request-id", value: "req-2", neverIndexed: true))
        #expect(decoded[2] == [
            Field(name: ":status", value: "503", neverIndexed: false),
            Field(name: "content-type", value: "text/plain", neverIndexed: false),
            Field(name: "x-request-id", value: "req-3", neverIndexed: true),
        ])
        // content-type went into the dynamic table with the first response: one byte (an
        // indexed field) from then on.
        #expect(blocks[1].count < blocks[0].count)
    }
}

extension String {
    /// The UTF-8 bytes, for a `FieldList` in a test.
    fileprivate func withContiguousUTF8<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        var copy = self
        return copy.withUTF8 { body(UnsafeRawBufferPointer($0)) }
    }
}

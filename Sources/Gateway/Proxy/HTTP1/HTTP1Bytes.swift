import NIOCore
import NIOHTTP1
import ProxyRules

/// Writing HTTP/1.1 message heads and chunk framing straight into a `ByteBuffer`, for both
/// directions of the lean path: the proxy copies the field lines it keeps as bytes and adds its
/// own with these, instead of building an `HTTPHeaders` of strings and having NIO's encoder
/// render it again.
extension ByteBuffer {
    @inline(__always)
    mutating func writeCRLF() {
        writeInteger(UInt16(0x0D0A))
    }

    /// `name: value\r\n`; `name` is a lower-case literal, `value` must hold no CR or LF (the
    /// callers pass values the gateway made or validated).
    mutating func writeField(_ name: StaticString, _ value: String) {
        writeStaticString(name)
        writeStaticString(": ")
        writeString(value)
        writeCRLF()
    }

    mutating func writeField(_ name: StaticString, _ value: RequestIDValue) {
        writeStaticString(name)
        writeStaticString(": ")
        value.withBytes { writeBytes($0) }
        writeCRLF()
    }

    mutating func writeField(_ name: StaticString, _ value: StaticString) {
        writeStaticString(name)
        writeStaticString(": ")
        writeStaticString(value)
        writeCRLF()
    }

    mutating func writeField(_ name: StaticString, decimal value: Int) {
        writeStaticString(name)
        writeStaticString(": ")
        writeDecimal(value)
        writeCRLF()
    }

    /// A non-negative integer in decimal, without a String.
    mutating func writeDecimal(_ value: Int) {
        precondition(value >= 0)
        if value < 10 {
            writeInteger(UInt8(48 + value))
            return
        }
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: room for any Int
        var count = 0
        var rest = value
        withUnsafeMutableBytes(of: &digits) { raw in
            while rest > 0 {
                raw[23 - count] = UInt8(48 + rest % 10)
                rest /= 10
                count += 1
            }
            writeBytes(UnsafeRawBufferPointer(rebasing: raw[(24 - count)...]))
        }
    }

    /// A chunk-size line: hex digits and CRLF.
    mutating func writeChunkSize(_ size: Int) {
        var digits: UInt64 = 0
        var count = 0
        var rest = size
        withUnsafeMutableBytes(of: &digits) { raw in
            repeat {
                let nibble = UInt8(rest & 0xF)
                raw[7 - count] = nibble < 10 ? 48 + nibble : 87 + nibble
                rest >>= 4
                count += 1
            } while rest > 0 && count < 8
            writeBytes(UnsafeRawBufferPointer(rebasing: raw[(8 - count)...]))
        }
        writeCRLF()
    }

    /// The start line of a response: `HTTP/1.x CODE REASON\r\n`.
    mutating func writeStatusLine(http10: Bool, status: HTTPResponseStatus) {
        writeStaticString(http10 ? "HTTP/1.0 " : "HTTP/1.1 ")
        writeDecimal(Int(status.code))
        writeStaticString(" ")
        writeString(status.reasonPhrase)
        writeCRLF()
    }
}

/// The gateway's own answers on HTTP/1.1 (routing misses, refusals, backend failures, parse
/// errors), rendered once here for the proxy handler.
enum HTTP1LocalResponse {
    /// The whole response; no body when it answers a HEAD request.
    static func render(
        _ answer: LocalAnswer, http10: Bool, requestID: RequestIDValue, close: Bool, headRequest: Bool,
        allocator: ByteBufferAllocator
    ) -> ByteBuffer {
        let body = answer.bodyText
        var buffer = allocator.buffer(capacity: 256 + body.utf8.count)
        buffer.writeStatusLine(http10: http10, status: answer.status)
        buffer.writeField("content-type", "text/plain; charset=utf-8")
        buffer.writeField("content-length", decimal: body.utf8.count)
        if let retryAfter = answer.retryAfter { buffer.writeField("retry-after", decimal: retryAfter) }
        for (name, value) in answer.extraHeaders {
            buffer.writeString(name)
            buffer.writeStaticString(": ")
            buffer.writeString(value)
            buffer.writeCRLF()
        }
        buffer.writeField("x-request-id", requestID)
        if close {
            buffer.writeField("connection", "close")
        } else if http10 {
            buffer.writeField("connection", "keep-alive")
        }
        buffer.writeCRLF()
        if !headRequest { buffer.writeString(body) }
        return buffer
    }
}

import Foundation
/// Splits the bytes a server sent on one HTTP/1.1 connection into responses, for tests that write
/// raw requests and must see exactly what came back, in order (interim 1xx responses included).
enum RawResponses {
    struct Response: Sendable {
        var status: Int
        var head: String
        var body: [UInt8]
        var text: String { String(decoding: body, as: UTF8.self) }
    }

    /// The complete responses at the start of `bytes`; a response still arriving is left out.
    /// A response with neither length nor chunked framing ends at the end of `bytes` (the close).
    static func parse(_ bytes: [UInt8], closed: Bool = false) -> [Response] {
        var responses: [Response] = []
        var index = 0
        let crlfcrlf: [UInt8] = Array("\r\n\r\n".utf8)
        while index < bytes.count {
            guard let headEnd = find(crlfcrlf, in: bytes, from: index) else { break }
            let head = String(decoding: bytes[index..<headEnd], as: UTF8.self)
            let lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
            let statusParts = lines.first?.split(separator: " ") ?? []
            guard statusParts.count >= 2, let status = Int(statusParts[1]) else { break }
            var length: Int?
            var chunked = false
            for line in lines.dropFirst() {
                guard let colon = line.firstIndex(of: ":") else { continue }
                let name = line[..<colon].lowercased()
                let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                if name == "content-length" { length = Int(value) }
                if name == "transfer-encoding", value.lowercased().hasSuffix("chunked") { chunked = true }
            }
            var cursor = headEnd + 4
            var body: [UInt8] = []
            if status < 200 || status == 204 || status == 304 {
                // No body.
            } else if chunked {
                guard let (decoded, end) = dechunk(bytes, from: cursor) else { break }
                body = decoded
                cursor = end
            } else if let length {
                guard bytes.count - cursor >= length else { break }
                body = Array(bytes[cursor..<cursor + length])
                cursor += length
            } else {
                guard closed else { break }
                body = Array(bytes[cursor...])
                cursor = bytes.count
            }
            responses.append(Response(status: status, head: head, body: body))
            index = cursor
        }
        return responses
    }

    /// How many final (non-1xx) responses are complete in `bytes`.
    static func count(in bytes: [UInt8]) -> Int {
        parse(bytes).filter { $0.status >= 200 }.count
    }

    private static func dechunk(_ bytes: [UInt8], from start: Int) -> ([UInt8], Int)? {
        var cursor = start
        var body: [UInt8] = []
        let crlf: [UInt8] = [13, 10]
        while true {
            guard let lineEnd = find(crlf, in: bytes, from: cursor) else { return nil }
            let sizeText = String(decoding: bytes[cursor..<lineEnd], as: UTF8.self).split(separator: ";").first ?? ""
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else { return nil }
            cursor = lineEnd + 2
            if size == 0 {
                // Trailers up to the empty line.
                while true {
                    guard let end = find(crlf, in: bytes, from: cursor) else { return nil }
                    let empty = end == cursor
                    cursor = end + 2
                    if empty { return (body, cursor) }
                }
            }
            guard bytes.count - cursor >= size + 2 else { return nil }
            body += bytes[cursor..<cursor + size]
            cursor += size + 2
        }
    }

    private static func find(_ needle: [UInt8], in bytes: [UInt8], from start: Int) -> Int? {
        guard bytes.count >= needle.count, start <= bytes.count - needle.count else { return nil }
        for i in start...(bytes.count - needle.count) where bytes[i] == needle[0] {
            if Array(bytes[i..<i + needle.count]) == needle { return i }
        }
        return nil
    }
}

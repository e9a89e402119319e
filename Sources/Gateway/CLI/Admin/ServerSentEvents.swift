/// Splits a `text/event-stream` into messages (the WHATWG rules the CLI needs: `event:`,
/// `id:` and `data:` lines, several `data:` lines joined by newlines, a blank line ends a
/// message, `:` starts a comment).
struct ServerSentEvents: Sendable {
    struct Message: Sendable, Equatable {
        var event: String
        var id: String?
        var data: String
    }

    private var buffer: [UInt8] = []
    private var event = ""
    private var id: String?
    private var data: [String] = []

    /// Feeds bytes; returns the messages they completed.
    mutating func feed(_ bytes: [UInt8]) -> [Message] {
        buffer += bytes
        var messages: [Message] = []
        while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
            var line = buffer[..<newline]
            if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
            buffer.removeSubrange(...newline)
            let text = String(decoding: line, as: UTF8.self)
            if text.isEmpty {
                if !data.isEmpty { messages.append(Message(event: event.isEmpty ? "message" : event, id: id, data: data.joined(separator: "\n"))) }
                event = ""
                data = []
                continue
            }
            if text.hasPrefix(":") { continue }
            let field: Substring
            var value: Substring
            if let colon = text.firstIndex(of: ":") {
                field = text[..<colon]
                value = text[text.index(after: colon)...]
                if value.hasPrefix(" ") { value = value.dropFirst() }
            } else {
                field = Substring(text)
                value = ""
            }
            switch field {
            case "event": event = String(value)
            case "data": data.append(String(value))
            case "id": id = String(value)
            default: break
            }
        }
        return messages
    }
}

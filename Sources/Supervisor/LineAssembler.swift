/// Turns the chunks read from one pipe into whole lines.
///
/// A pure state machine (bytes in, lines out) so the cutting and flushing rules are tested
/// without processes. Rules: a line ends at `\n` (a trailing `\r` is dropped too); a line longer
/// than `maxLineBytes` is emitted as its first `maxLineBytes` bytes (backed off to a whole UTF-8
/// character) plus ``cutMarker``, and the rest is dropped up to the next newline, so one runaway
/// writer cannot make the gateway buffer without bound; invalid UTF-8 becomes U+FFFD.
struct LineAssembler: Sendable {
    static let cutMarker = " [line cut]"

    let maxLineBytes: Int
    private var pending: [UInt8] = []
    /// In the middle of a line that was already cut: drop bytes until the next newline.
    private var discarding = false

    init(maxLineBytes: Int) {
        precondition(maxLineBytes > 0, "maxLineBytes must be positive")
        self.maxLineBytes = maxLineBytes
    }

    /// The lines completed by `bytes`, in order.
    mutating func append(_ bytes: UnsafeRawBufferPointer) -> [String] {
        var lines: [String] = []
        var rest = bytes[...]
        while !rest.isEmpty {
            let newline = rest.firstIndex(of: UInt8(ascii: "\n"))
            let afterNewline = newline.map { rest.index(after: $0) } ?? rest.endIndex
            if discarding {
                guard newline != nil else { return lines }
                discarding = false
                rest = rest[afterNewline...]
                continue
            }
            let segment = rest[..<(newline ?? rest.endIndex)]
            let room = maxLineBytes - pending.count
            if segment.count > room {
                pending.append(contentsOf: segment.prefix(room))
                lines.append(Self.decode(Self.wholeCharacters(pending)) + Self.cutMarker)
                pending.removeAll(keepingCapacity: true)
                // A newline in this chunk ends the cut line; otherwise drop until one comes.
                discarding = newline == nil
                rest = rest[afterNewline...]
                continue
            }
            pending.append(contentsOf: segment)
            guard newline != nil else { return lines }
            lines.append(Self.decode(pending[...]))
            pending.removeAll(keepingCapacity: true)
            rest = rest[afterNewline...]
        }
        return lines
    }

    /// Convenience for tests and callers holding an array.
    mutating func append(_ bytes: [UInt8]) -> [String] {
        bytes.withUnsafeBytes { append($0) }
    }

    /// End of file: the partial last line, if any (a program's last words often lack a newline).
    mutating func finish() -> String? {
        defer {
            pending.removeAll()
            discarding = false
        }
        guard !pending.isEmpty else { return nil }
        return Self.decode(pending[...])
    }

    private static func decode(_ bytes: ArraySlice<UInt8>) -> String {
        var bytes = bytes
        if bytes.last == UInt8(ascii: "\r") {
            bytes = bytes.dropLast()
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `bytes` without a trailing, incomplete UTF-8 sequence, so a cut does not print U+FFFD for
    /// a character it split.
    static func wholeCharacters(_ bytes: [UInt8]) -> ArraySlice<UInt8> {
        // Find the start of the last (possibly incomplete) sequence: at most 3 continuation bytes.
        var start = bytes.endIndex
        var continuations = 0
        while start > bytes.startIndex && continuations < 4 {
            start -= 1
            if bytes[start] & 0b1100_0000 != 0b1000_0000 { break }
            continuations += 1
        }
        guard start < bytes.endIndex else { return bytes[...] }
        let lead = bytes[start]
        let expected: Int
        switch lead {
        case 0b1100_0000...0b1101_1111: expected = 2
        case 0b1110_0000...0b1110_1111: expected = 3
        case 0b1111_0000...0b1111_0111: expected = 4
        default: return bytes[...]  // ASCII or invalid: nothing to back off from
        }
        let available = bytes.endIndex - start
        return available < expected ? bytes[..<start] : bytes[...]
    }
}

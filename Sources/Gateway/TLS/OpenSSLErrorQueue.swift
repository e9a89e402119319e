import COpenSSL

/// The calling thread's OpenSSL error queue, read into words an operator can act on.
///
/// OpenSSL reports why a call failed by pushing entries on a thread-local queue, and never removes
/// them by itself: an entry left over from an earlier call would show up as the reason for a later,
/// unrelated failure. Every call whose failure is inspected is therefore preceded by `clear()`,
/// and every failure `drain()`s the queue, leaving it empty for the next call on this thread
/// (an event loop thread serves many connections).
enum OpenSSLErrorQueue {
    /// One queued error.
    struct Entry: Sendable, Equatable {
        /// OpenSSL's packed error code (library and reason), for telling causes apart.
        var code: UInt
        /// `library::reason`, plus OpenSSL's detail in parentheses when it gave one, e.g.
        /// `PEM routines::no start line` or `SSL routines::unsupported protocol`.
        var text: String
    }

    /// Forgets anything earlier calls on this thread left behind.
    static func clear() {
        ERR_clear_error()
    }

    /// Takes every queued error, oldest first.
    static func drain() -> [Entry] {
        var entries: [Entry] = []
        var data: UnsafePointer<CChar>?
        var flags: Int32 = 0
        while true {
            let code = ERR_get_error_all(nil, nil, nil, &data, &flags)
            if code == 0 { break }
            var text = Self.describe(code)
            if flags & ERR_TXT_STRING != 0, let data, data.pointee != 0 {
                text += " (\(String(cString: data)))"
            }
            entries.append(Entry(code: code, text: text))
        }
        return entries
    }

    /// The texts of `drain()`, or `fallback` when OpenSSL queued nothing (some failures, such as
    /// `SSL_ERROR_SYSCALL`, come without a queue entry).
    static func drainReasons(fallback: @autoclosure () -> String) -> [String] {
        let reasons = drain().map(\.text)
        return reasons.isEmpty ? [fallback()] : reasons
    }

    /// `ERR_error_string_n` gives `error:0480006C:PEM routines::no start line`; the hex code
    /// means nothing to an operator, so only the part after it is kept.
    private static func describe(_ code: UInt) -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buffer, buffer.count)
        let full = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let parts = full.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "error" else { return full }
        return String(parts[2])
    }
}

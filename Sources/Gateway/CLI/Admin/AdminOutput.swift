#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Where the admin commands write: results to stdout, failures to stderr as `gateway: ...`.
enum AdminOutput {
    /// `gateway: <message>` on stderr.
    static func error(_ message: String) {
        Self.writeAll(Array("gateway: \(message)\n".utf8), to: STDERR_FILENO)
    }

    /// Bytes to stdout unchanged (for `--json`), with a newline added when they lack one.
    static func raw(_ bytes: [UInt8]) {
        var bytes = bytes
        if bytes.last != UInt8(ascii: "\n") { bytes.append(UInt8(ascii: "\n")) }
        // Anything `print` buffered goes out first, so the order on stdout is the program's.
        fflush(nil)
        Self.writeAll(bytes, to: STDOUT_FILENO)
    }

    /// Lines to stdout.
    static func lines(_ lines: [String]) {
        for line in lines { print(line) }
    }

    /// The terminal's width when stdout is one; `nil` when output goes to a pipe or file, so a
    /// script gets every column.
    static var terminalWidth: Int? {
        guard isatty(STDOUT_FILENO) == 1 else { return nil }
        var size = winsize()
        guard ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 else { return nil }
        return Int(size.ws_col)
    }

    private static func writeAll(_ bytes: [UInt8], to fd: Int32) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return }
            offset += written
        }
    }
}

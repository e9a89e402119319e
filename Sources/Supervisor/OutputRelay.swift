import Glibc
import Synchronization

/// Relays a child's stdout and stderr as whole lines, prefixed with the instance name.
///
/// One relay serves every process of a spawner. The pipes are read by each process's own
/// dedicated thread (the one that spawned it and reaps it, see `ChildWatch`), with one `poll` over
/// both pipes and the exit: no extra thread, no dependence on Dispatch's shared pool (a busy pool
/// would delay the relay and with it the exit), the exit is published strictly after the tail of
/// the output, and a slow sink slows down only the process whose output it is writing.
public final class OutputRelay: Sendable {
    /// Which of the child's streams a line came from.
    public enum OutputStream: Sendable, Equatable {
        case stdout, stderr
    }

    /// The longest line passed on whole; longer ones are cut (see `LineAssembler`).
    public let maxLineBytes: Int
    private let sink: @Sendable (_ line: String, _ stream: OutputStream) -> Void
    /// Also keeps every line (unprefixed) for `gateway logs` and writes the `log_file`s.
    public let log: OutputLog?

    /// - Parameter sink: gets whole lines already prefixed, `[shop#2] hello`, without a trailing
    ///   newline. Lines of one stream arrive in order; different processes call it concurrently.
    public init(
        maxLineBytes: Int = 16 * 1024,
        log: OutputLog? = nil,
        sink: @escaping @Sendable (_ line: String, _ stream: OutputStream) -> Void
    ) {
        precondition(maxLineBytes > 0, "maxLineBytes must be positive")
        self.maxLineBytes = maxLineBytes
        self.log = log
        self.sink = sink
    }

    /// Writes each line plus `\n` to the gateway's own stdout or stderr, one `write(2)` per line
    /// under one process-wide lock, so lines of different instances never interleave even when
    /// stdout and stderr are the same file.
    public static func standard(maxLineBytes: Int = 16 * 1024, log: OutputLog? = nil) -> OutputRelay {
        writing(stdout: STDOUT_FILENO, stderr: STDERR_FILENO, maxLineBytes: maxLineBytes, log: log)
    }

    /// ``standard(maxLineBytes:)`` with other descriptors, so tests exercise the real writer.
    static func writing(stdout: Int32, stderr: Int32, maxLineBytes: Int, log: OutputLog? = nil) -> OutputRelay {
        OutputRelay(maxLineBytes: maxLineBytes, log: log) { line, stream in
            LineWriter.write(line, to: stream == .stdout ? stdout : stderr)
        }
    }

    /// The line splitter for one stream of one process. It is used by that process's own thread
    /// only (see `ChildWatch`), so it needs no lock.
    func channel(name: String, pid: Int32, stream: OutputStream) -> RelayChannel {
        RelayChannel(
            name: name, pid: pid, stream: stream, assembler: LineAssembler(maxLineBytes: maxLineBytes), sink: sink, log: log)
    }
}

/// One stream of one process: bytes in, prefixed lines out to the sink.
struct RelayChannel {
    let name: String
    let pid: Int32
    let stream: OutputRelay.OutputStream
    var assembler: LineAssembler
    let sink: @Sendable (String, OutputRelay.OutputStream) -> Void
    let log: OutputLog?

    mutating func consume(_ bytes: UnsafeRawBufferPointer) {
        for line in assembler.append(bytes) {
            emit(line)
        }
    }

    /// End of file: flush the partial last line.
    mutating func finish() {
        if let last = assembler.finish() {
            emit(last)
        }
    }

    private func emit(_ line: String) {
        sink("[\(name)] " + line, stream)
        log?.append(instance: name, pid: pid, stream: stream == .stdout ? .stdout : .stderr, text: line)
    }
}

/// The standard relay's writer: one `write(2)` per line under one process-wide lock.
enum LineWriter {
    private static let lock = Mutex(())

    static func write(_ line: String, to descriptor: Int32) {
        var bytes = Array(line.utf8)
        bytes.append(UInt8(ascii: "\n"))
        lock.withLock { _ in
            // Nowhere to report a relay whose own output is broken: a failure drops the line.
            _ = DescriptorWriter.writeAll(bytes, to: descriptor)
        }
    }
}

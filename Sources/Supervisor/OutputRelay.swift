import Dispatch
import Glibc
import Synchronization

/// Relays a child's stdout and stderr as whole lines, prefixed with the instance name.
///
/// One relay serves every process of a spawner. Reading uses one Dispatch read source per pipe
/// (on a serial queue per process) rather than a poll thread of our own: Dispatch already
/// multiplexes all sources over one epoll, wakes only for ready pipes, and the serial queue makes
/// each process's two line buffers single-threaded without further locking.
public final class OutputRelay: Sendable {
    /// Which of the child's streams a line came from.
    public enum OutputStream: Sendable, Equatable {
        case stdout, stderr
    }

    /// The longest line passed on whole; longer ones are cut (see `LineAssembler`).
    public let maxLineBytes: Int
    private let sink: @Sendable (_ line: String, _ stream: OutputStream) -> Void

    /// - Parameter sink: gets whole lines already prefixed, `[shop#2] hello`, without a trailing
    ///   newline. Lines of one stream arrive in order; different processes call it concurrently.
    public init(
        maxLineBytes: Int = 16 * 1024,
        sink: @escaping @Sendable (_ line: String, _ stream: OutputStream) -> Void
    ) {
        precondition(maxLineBytes > 0, "maxLineBytes must be positive")
        self.maxLineBytes = maxLineBytes
        self.sink = sink
    }

    /// Writes each line plus `\n` to the gateway's own stdout or stderr, one `write(2)` per line
    /// under one process-wide lock, so lines of different instances never interleave even when
    /// stdout and stderr are the same file.
    public static func standard(maxLineBytes: Int = 16 * 1024) -> OutputRelay {
        writing(stdout: STDOUT_FILENO, stderr: STDERR_FILENO, maxLineBytes: maxLineBytes)
    }

    /// ``standard(maxLineBytes:)`` with other descriptors, so tests exercise the real writer.
    static func writing(stdout: Int32, stderr: Int32, maxLineBytes: Int) -> OutputRelay {
        OutputRelay(maxLineBytes: maxLineBytes) { line, stream in
            LineWriter.write(line, to: stream == .stdout ? stdout : stderr)
        }
    }

    /// Starts relaying from two pipe read ends (non-blocking), taking ownership of them: each is
    /// closed at its end of file. The returned group is left once per pipe at end of file, after
    /// the last line was passed to the sink.
    func attach(name: String, stdout: Int32, stderr: Int32) -> DispatchGroup {
        let drained = DispatchGroup()
        let queue = DispatchQueue(label: "gateway.relay.\(name)")
        for (descriptor, stream) in [(stdout, OutputStream.stdout), (stderr, .stderr)] {
            drained.enter()
            let reader = PipeReader(
                descriptor: descriptor,
                prefix: "[\(name)] ",
                stream: stream,
                maxLineBytes: maxLineBytes,
                sink: sink
            )
            let source = DispatchSource.makeReadSource(fileDescriptor: descriptor, queue: queue)
            // The handler keeps the source alive until it cancels itself at end of file, which
            // also releases the handlers and so the source.
            source.setEventHandler {
                if reader.readAvailable() == .ended {
                    source.cancel()
                }
            }
            source.setCancelHandler {
                close(descriptor)
                drained.leave()
            }
            source.resume()
        }
        return drained
    }
}

/// Reads one pipe and turns it into prefixed lines for the sink.
private final class PipeReader: Sendable {
    enum Progress { case more, ended }

    let descriptor: Int32
    let prefix: String
    let stream: OutputRelay.OutputStream
    let sink: @Sendable (String, OutputRelay.OutputStream) -> Void
    /// Only touched from the process's serial relay queue; the lock is uncontended and makes that
    /// provable to the compiler instead of asserted.
    let assembler: Mutex<LineAssembler>

    init(
        descriptor: Int32,
        prefix: String,
        stream: OutputRelay.OutputStream,
        maxLineBytes: Int,
        sink: @escaping @Sendable (String, OutputRelay.OutputStream) -> Void
    ) {
        self.descriptor = descriptor
        self.prefix = prefix
        self.stream = stream
        self.sink = sink
        self.assembler = Mutex(LineAssembler(maxLineBytes: maxLineBytes))
    }

    func readAvailable() -> Progress {
        withUnsafeTemporaryAllocation(byteCount: 64 * 1024, alignment: 1) { buffer in
            let count = read(descriptor, buffer.baseAddress, buffer.count)
            if count > 0 {
                let lines = assembler.withLock {
                    $0.append(UnsafeRawBufferPointer(rebasing: buffer[..<count]))
                }
                lines.forEach { sink(prefix + $0, stream) }
                return .more
            }
            if count < 0 && (errno == EAGAIN || errno == EINTR) {
                return .more
            }
            // End of file, or a read error that will not go away: flush and stop either way.
            if let last = assembler.withLock({ $0.finish() }) {
                sink(prefix + last, stream)
            }
            return .ended
        }
    }
}

/// The standard relay's writer: one `write(2)` per line under one process-wide lock.
enum LineWriter {
    private static let lock = Mutex(())

    static func write(_ line: String, to descriptor: Int32) {
        var bytes = Array(line.utf8)
        bytes.append(UInt8(ascii: "\n"))
        lock.withLock { _ in
            bytes.withUnsafeBytes { buffer in
                var offset = 0
                // Loop for short writes (a full pipe or a signal mid-line); give up on any other
                // error, since a relay has nowhere to report that its own output is broken.
                while offset < buffer.count {
                    let written = Glibc.write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                    if written > 0 {
                        offset += written
                    } else if written < 0 && errno == EINTR {
                        continue
                    } else if written < 0 && errno == EAGAIN {
                        // A non-blocking stdout that is full: wait until it drains.
                        var poller = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
                        _ = poll(&poller, 1, 1000)
                    } else {
                        return
                    }
                }
            }
        }
    }
}

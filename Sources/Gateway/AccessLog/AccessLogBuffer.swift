import NIOCore
import NIOHTTP1

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One event loop's share of the access log: exchanges start and finish their records here, the
/// lines are formatted on the loop into one buffer, and the buffer goes to the `AccessLogWriter`
/// in batches: when it passes `batchBytes`, or `batchDelay` after its first line, whichever comes
/// first. So a busy loop hands over a batch per few hundred requests, an idle one a line within
/// `batchDelay`, and no loop ever writes to a file itself.
///
/// Touched only on its loop (it lives in the loop's `LoopContext`).
final class AccessLogBuffer {
    static let batchBytes = 32 * 1024
    static let batchDelay = TimeAmount.milliseconds(50)

    let writer: AccessLogWriter
    private let eventLoop: EventLoop
    private var formatter = AccessLogFormatter(format: .json)
    private var bytes: [UInt8] = []
    private var lines = 0
    private var flushTimer: Scheduled<Void>?

    init(writer: AccessLogWriter, eventLoop: EventLoop) {
        self.writer = writer
        self.eventLoop = eventLoop
        bytes.reserveCapacity(Self.batchBytes + 1024)
    }

    /// Whether lines are written (a reload may turn the log on or off).
    var isWriting: Bool { writer.format != nil }

    /// A record for a request whose head just arrived, or nil when there is no access log (then
    /// nothing more is spent on it).
    func start(
        requestID: String, clientIP: String, clientPort: Int, method: String, path: String, httpVersion: String,
        headers: HTTPHeaders
    ) -> AccessLogRecord? {
        start(
            requestID: requestID, clientIP: clientIP, clientPort: clientPort, method: method, path: path, httpVersion: httpVersion,
            referer: headers.first(name: "referer"), userAgent: headers.first(name: "user-agent"))
    }

    /// The same, with the two fields the combined format quotes already picked out.
    func start(
        requestID: String, clientIP: String, clientPort: Int, method: String, path: String, httpVersion: String,
        referer: @autoclosure () -> String?, userAgent: @autoclosure () -> String?
    ) -> AccessLogRecord? {
        guard let format = writer.format else { return nil }
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var record = AccessLogRecord(
            seconds: Int(now.tv_sec), nanoseconds: Int(now.tv_nsec), started: .now(), requestID: requestID,
            clientIP: clientIP, clientPort: clientPort, method: method, path: path, httpVersion: httpVersion)
        if format == .combined {
            record.referer = referer()
            record.userAgent = userAgent()
        }
        return record
    }

    /// The exchange ended with `status`: its line is formatted now and written with the next batch.
    func finish(_ record: consuming AccessLogRecord, status: Int) {
        guard let format = writer.format else { return }
        record.status = status
        record.durationNanoseconds = (NIODeadline.now() - record.started).nanoseconds
        if formatter.format != format { formatter = AccessLogFormatter(format: format) }
        formatter.append(record, to: &bytes)
        lines += 1
        if bytes.count >= Self.batchBytes {
            flush()
        } else if flushTimer == nil {
            flushTimer = eventLoop.assumeIsolated().scheduleTask(in: Self.batchDelay) { [self] in
                flushTimer = nil
                flush()
            }
        }
    }

    /// Hands what is buffered to the writer (also at shutdown).
    func flush() {
        flushTimer?.cancel()
        flushTimer = nil
        guard lines > 0 else { return }
        var batch: [UInt8] = []
        batch.reserveCapacity(Self.batchBytes + 1024)
        swap(&batch, &bytes)
        writer.submit(batch, lines: lines)
        lines = 0
    }
}

import Dispatch
import Glibc
import Logging
import Synchronization

/// The output of every instance this process relays: an ``OutputRing`` per instance slot for
/// `gateway logs`, long polls waiting for new lines, and the `log_file`s.
///
/// It lives where the pipes are read: in the keeper under `gateway run` (so the lines survive a
/// worker upgrade), in the gateway itself when it runs without a keeper. The relay threads call
/// ``append(instance:pid:stream:text:)``; that only takes a lock, copies the line into the ring
/// and hands it to the file writer's queue, so a slow disk never holds up a relay (a backlog
/// above ``maxFileBacklog`` bytes is dropped and the drop written to the file once there is room).
public final class OutputLog: Sendable {
    /// Bytes queued for the log files at most; beyond it lines are dropped (and counted).
    public static let maxFileBacklog = 4 << 20
    /// Text bytes one page carries at most, so an answer fits a keeper frame with room to spare.
    public static let maxPageBytes = 512 * 1024

    private struct Waiter {
        var query: OutputQuery
        var deliver: @Sendable (OutputPage) -> Void
    }

    private struct State {
        var rings: [String: OutputRing] = [:]
        var files: [String: LogFileSpec] = [:]
        var waiters: [Int: Waiter] = [:]
        var nextWaiter = 0
        var fileBacklog = 0
        var dropped: [String: Int] = [:]
    }

    private let state = Mutex(State())
    private let capacity: Int
    private let maxBytes: Int
    private let writer = DispatchQueue(label: "gateway.log-files")
    /// Touched on `writer` only.
    private let openFiles = Mutex<[String: RotatingLogFile]>([:])
    /// Lines lost per log file path while it cannot be written.
    private let fileFailures = Mutex<[String: Int]>([:])
    private let logger: Logger?

    public init(capacity: Int = OutputRing.defaultCapacity, maxBytes: Int = OutputRing.defaultMaxBytes, logger: Logger? = nil) {
        self.capacity = capacity
        self.maxBytes = maxBytes
        self.logger = logger
    }

    /// Where `instance`'s lines go besides the ring, from its next line on (set at each spawn:
    /// a reload may have changed it). Nil: nowhere.
    public func setLogFile(_ spec: LogFileSpec?, for instance: String) {
        state.withLock { $0.files[instance] = spec }
    }

    /// One whole line of `instance` (without the relay's prefix).
    public func append(instance: String, pid: Int32, stream: OutputRing.Stream, text: String) {
        let now = Self.now()
        var deliveries: [(@Sendable (OutputPage) -> Void, OutputPage)] = []
        var fileWrite: (spec: LogFileSpec, bytes: [UInt8], dropped: Int)?
        state.withLock { state in
            let sequence = state.rings[instance, default: OutputRing(capacity: capacity, maxBytes: maxBytes)]
                .append(text, stream: stream, pid: pid, time: now)
            for (id, waiter) in state.waiters where waiter.query.instance == instance && sequence > (waiter.query.after ?? 0) {
                state.waiters[id] = nil
                deliveries.append((waiter.deliver, Self.page(waiter.query, state.rings[instance]!)))
            }
            if let spec = state.files[instance] {
                let bytes = Array(Self.fileLine(time: now, instance: instance, text: text).utf8)
                if state.fileBacklog + bytes.count > Self.maxFileBacklog {
                    state.dropped[spec.path, default: 0] += 1
                } else {
                    state.fileBacklog += bytes.count
                    fileWrite = (spec, bytes, state.dropped.removeValue(forKey: spec.path) ?? 0)
                }
            }
        }
        for (deliver, page) in deliveries { deliver(page) }
        if let fileWrite { write(fileWrite.bytes, to: fileWrite.spec, dropped: fileWrite.dropped, instance: instance, time: now) }
    }

    /// Answers `query` through `deliver`: at once when there are lines after `query.after` (or
    /// no wait was asked for), else when the first one comes or the wait is over.
    public func read(_ query: OutputQuery, deliver: @escaping @Sendable (OutputPage) -> Void) {
        let answer = state.withLock { state -> OutputPage? in
            let ring = state.rings[query.instance] ?? OutputRing(capacity: 1, maxBytes: 1)
            // An `after` beyond the newest line (the keeper restarted and counts anew) is
            // answered at once, from the newest lines.
            guard let after = query.after, query.waitMilliseconds > 0, ring.lastSequence == after else {
                return Self.page(query, ring)
            }
            let id = state.nextWaiter
            state.nextWaiter += 1
            state.waiters[id] = Waiter(query: query, deliver: deliver)
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(query.waitMilliseconds)) { [self] in
                expire(id)
            }
            return nil
        }
        if let answer { deliver(answer) }
    }

    private func expire(_ id: Int) {
        let expired = state.withLock { state -> (Waiter, OutputPage)? in
            guard let waiter = state.waiters.removeValue(forKey: id) else { return nil }
            let ring = state.rings[waiter.query.instance] ?? OutputRing(capacity: 1, maxBytes: 1)
            return (waiter, Self.page(waiter.query, ring))
        }
        if let (waiter, page) = expired { waiter.deliver(page) }
    }

    private static func page(_ query: OutputQuery, _ ring: OutputRing) -> OutputPage {
        let after = query.after.flatMap { $0 <= ring.lastSequence ? $0 : nil }
        let lines = ring.lines(last: query.lines, after: after, maxBytes: maxPageBytes)
        let firstWanted = (after ?? (ring.lastSequence - query.lines)) + 1
        // Lines left out, or a position that no longer exists (the numbering started over).
        let gap = (lines.first?.sequence ?? ring.lastSequence + 1) > max(1, firstWanted) || after != query.after
        return OutputPage(lines: lines, lastSequence: ring.lastSequence, gap: gap)
    }

    // MARK: Log files

    private func write(_ bytes: [UInt8], to spec: LogFileSpec, dropped: Int, instance: String, time: Double) {
        writer.async { [self] in
            defer { state.withLock { $0.fileBacklog -= bytes.count } }
            var out: [UInt8] = []
            if dropped > 0 {
                out += Array(Self.fileLine(time: time, instance: instance, text: "[gateway] \(dropped) lines dropped: the log file could not keep up").utf8)
            }
            out += bytes
            let failure = openFiles.withLock { files -> Int32? in
                if files[spec.path]?.spec != spec { files[spec.path] = RotatingLogFile(spec: spec) }
                return files[spec.path]!.write(out)
            }
            // Told once when a file starts failing and once when it works again, with the lines
            // it lost: a full disk must not turn every output line into an error line.
            let lines = out.reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
            let change = fileFailures.withLock { failures -> (first: Bool, recovered: Int?) in
                if failure != nil {
                    let first = failures[spec.path] == nil
                    failures[spec.path, default: 0] += lines
                    return (first, nil)
                }
                return (false, failures.removeValue(forKey: spec.path))
            }
            if let error = failure, change.first {
                logger?.error(
                    "cannot write an instance log file; its lines are lost until it works again",
                    metadata: ["path": "\(spec.path)", "instance": "\(instance)", "error": "\(String(cString: strerror(error)))"])
            } else if let lost = change.recovered {
                logger?.notice("instance log file writable again", metadata: ["path": "\(spec.path)", "lines_lost": "\(lost)"])
            }
        }
    }

    /// Waits until every line handed to the file writer so far is written (tests, shutdown).
    public func flushFiles() {
        writer.sync {}
    }

    /// `2026-01-31T12:00:00.123Z [shop#2] text` plus the newline.
    static func fileLine(time: Double, instance: String, text: String) -> String {
        "\(timestamp(time)) [\(instance)] \(text)\n"
    }

    /// RFC 3339 in UTC with milliseconds, `2026-01-31T12:00:00.123Z`: the time of instance log
    /// lines, and of the gateway's events and audit lines.
    public static func timestamp(_ time: Double) -> String {
        var seconds = time_t(time.rounded(.down))
        let milliseconds = Int((time - Double(seconds)) * 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let millis = milliseconds < 10 ? "00\(milliseconds)" : milliseconds < 100 ? "0\(milliseconds)" : "\(milliseconds)"
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T"
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(millis)Z"
    }

    static func now() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }
}

extension OutputLog: OutputLogReading {
    public func read(_ query: OutputQuery) async -> Result<OutputPage, OutputLogError> {
        await withCheckedContinuation { continuation in
            read(query) { continuation.resume(returning: .success($0)) }
        }
    }
}

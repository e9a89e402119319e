import Dispatch
import Foundation
import Logging
import Supervisor
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes the access log's batches to its file (or standard output) on a thread of its own, so an
/// event loop never waits on a disk.
///
/// The loops hand over whole batches (`submit`); the queue between them is bounded by bytes. A
/// writer that falls behind (a stalled disk, a pipe nobody reads) makes the loops drop batches and
/// count their lines instead of waiting or growing without end; the first drop is logged, and
/// the total at the end.
///
/// The writer is not woken per batch: a wake costs the event loop a futex call and, on a busy
/// machine, often a context switch (the woken thread preempts the loop that woke it), which the
/// first version of this paid up to ~200 times a second and showed as a 4 % `finish_task_switch`
/// in the loop's profile. While lines keep coming the writer naps `napTime` between rounds and
/// takes what has queued meanwhile; only a writer idle long enough to have found nothing is
/// woken by the next batch (or one napping when the queue passes `wakeBytes`).
///
/// Hand-written (a `Mutex` over the queue and a semaphore to wake one thread) rather than on
/// `NIOThreadPool`: that pool's queue has no bound and no way to refuse work, which is the one
/// property this needs, and a reopen (reload, logrotate) must be ordered with the writes, which
/// a single thread that owns the descriptor gives for free.
final class AccessLogWriter: Sendable {
    struct OpenError: Error, CustomStringConvertible {
        var path: String
        var reason: String
        var description: String { "cannot open the access log \(path): \(reason)" }
    }

    /// Bytes waiting for the writer beyond which batches are dropped.
    let maxQueuedBytes: Int
    /// Queued bytes past which a napping writer is woken early.
    static let wakeBytes = 1 << 20
    /// How long the writer waits between rounds while lines keep coming.
    static let napTime = DispatchTimeInterval.milliseconds(20)

    private enum WriterState {
        /// Taking or writing a round.
        case running
        /// Found lines last round; back after `napTime` by itself.
        case napping
        /// Found nothing last round; waits to be woken.
        case sleeping
    }

    private struct State {
        var queue: [(bytes: [UInt8], lines: Int)] = []
        var queuedBytes = 0
        /// Lines dropped because the queue was full or a write failed.
        var dropped = 0
        /// A descriptor to switch to before the next write (a reload or a first configuration);
        /// -1 to stop writing.
        var nextDescriptor: Int32?
        var threadStarted = false
        var writer = WriterState.running
        var closing = false
    }

    private let state = Mutex(State())
    /// Wakes the writer thread (signalled only when it sleeps, so a busy writer costs no syscall).
    private let wake = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    /// 0: no access log; otherwise `AccessLogFormat` + 1. Read by the loops once per request.
    private let mode = Atomic<UInt8>(0)
    private let logger: Logger

    init(logger: Logger, maxQueuedBytes: Int = 16 << 20) {
        self.logger = logger
        self.maxQueuedBytes = maxQueuedBytes
    }

    /// The format lines are written in, or nil when there is no access log.
    var format: AccessLogFormat? {
        switch mode.load(ordering: .relaxed) {
        case 1: .json
        case 2: .combined
        default: nil
        }
    }

    /// Opens (or reopens: a reload after logrotate moved the file) the destination and sets the
    /// format; nil stops the access log. A file that cannot be opened changes nothing.
    func configure(_ config: AccessLogConfig?) throws(OpenError) {
        guard let config else {
            mode.store(0, ordering: .relaxed)
            hand(descriptor: -1)
            return
        }
        let descriptor: Int32
        switch config.destination {
        case .standardOutput:
            // A copy, so the writer closes its descriptor alike in both cases.
            descriptor = dup(STDOUT_FILENO)
        case .file(let path):
            descriptor = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        }
        guard descriptor >= 0 else {
            throw OpenError(path: config.path, reason: String(cString: strerror(errno)))
        }
        hand(descriptor: descriptor)
        mode.store(config.format == .json ? 1 : 2, ordering: .relaxed)
    }

    private func hand(descriptor: Int32) {
        let (start, signal, replaced) = state.withLock { state -> (Bool, Bool, Int32?) in
            let replaced = state.nextDescriptor
            state.nextDescriptor = descriptor
            let start = !state.threadStarted && descriptor >= 0
            if start { state.threadStarted = true }
            let signal = state.writer != .running
            state.writer = .running
            return (start, signal, replaced)
        }
        if let replaced, replaced >= 0 { closeDescriptor(replaced) }
        if start {
            let thread = Thread { [self] in run() }
            thread.name = "access-log"
            thread.start()
        } else if signal {
            wake.signal()
        }
    }

    /// Queues a batch of `lines` lines; dropped (and counted) when the queue is full. Never blocks
    /// beyond the lock, which the writer holds only to swap the queue out.
    func submit(_ bytes: [UInt8], lines: Int) {
        let signal = state.withLock { state -> Bool in
            guard !state.closing, state.queuedBytes + bytes.count <= maxQueuedBytes else {
                state.dropped += lines
                return false
            }
            state.queue.append((bytes, lines))
            state.queuedBytes += bytes.count
            let signal =
                state.writer == .sleeping || (state.writer == .napping && state.queuedBytes > Self.wakeBytes)
            if signal { state.writer = .running }
            return signal
        }
        if signal { wake.signal() }
    }

    /// Lines dropped so far.
    var dropped: Int { state.withLock { $0.dropped } }

    /// Writes what is queued and stops the thread; waits up to `timeout` for a slow disk.
    func close(timeout: Duration = .seconds(5)) {
        let (started, signal) = state.withLock { state -> (Bool, Bool) in
            state.closing = true
            let signal = state.writer != .running
            state.writer = .running
            return (state.threadStarted, signal)
        }
        guard started else { return }
        if signal { wake.signal() }
        let nanoseconds = timeout.components.seconds * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000
        if finished.wait(timeout: .now() + .nanoseconds(Int(nanoseconds))) == .timedOut {
            logger.warning("access log writer did not finish in time", metadata: ["timeout": "\(timeout)"])
        }
    }

    // MARK: The writer thread

    private func run() {
        #if os(Linux)
        // Nothing here is urgent: as a batch thread at a lower priority, the writer never
        // preempts an event loop when it wakes (SCHED_BATCH turns wakeup preemption off) and
        // yields the core to one. Best effort: a failure leaves it an ordinary thread.
        // SCHED_BATCH is 3 (linux/sched.h); Glibc only declares it under _GNU_SOURCE.
        var parameters = sched_param()
        _ = sched_setscheduler(0, 3, &parameters)
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 10)
        #endif
        var descriptor: Int32 = -1
        var reportedDrops = false
        var writeFailed = false
        while true {
            let (batches, next, closing, dropped, then) = state.withLock { state in
                let taken = (state.queue, state.nextDescriptor, state.closing, state.dropped)
                state.queue.removeAll(keepingCapacity: true)
                state.queuedBytes = 0
                state.nextDescriptor = nil
                state.writer = taken.2 ? .running : (taken.0.isEmpty && taken.1 == nil ? .sleeping : .napping)
                return (taken.0, taken.1, taken.2, taken.3, state.writer)
            }
            if let next {
                if descriptor >= 0 { closeDescriptor(descriptor) }
                descriptor = next
                writeFailed = false
            }
            var failedLines = 0
            for batch in batches {
                guard descriptor >= 0, !writeFailed else {
                    failedLines += batch.lines
                    continue
                }
                if let error = Self.writeAll(batch.bytes, to: descriptor) {
                    writeFailed = true
                    failedLines += batch.lines
                    logger.error("access log write failed; lines are dropped until the next reload", metadata: ["error": "\(error)"])
                }
            }
            if failedLines > 0 { state.withLock { $0.dropped += failedLines } }
            if dropped > 0, !reportedDrops {
                reportedDrops = true
                logger.warning("access log lines dropped: the writer falls behind", metadata: ["dropped": "\(dropped)"])
            }
            if closing {
                if descriptor >= 0 { closeDescriptor(descriptor) }
                let total = state.withLock { $0.dropped }
                if total > 0 { logger.warning("access log closed with lines dropped", metadata: ["dropped": "\(total)"]) }
                finished.signal()
                return
            }
            switch then {
            case .sleeping: wake.wait()
            case .napping: _ = wake.wait(timeout: .now() + Self.napTime)
            case .running: break
            }
        }
    }

    /// Writes every byte (see `DescriptorWriter`: a full pipe is waited on, not a failure); the
    /// system's reason on failure.
    private static func writeAll(_ bytes: [UInt8], to descriptor: Int32) -> String? {
        DescriptorWriter.writeAll(bytes, to: descriptor).map { String(cString: strerror($0)) }
    }
}

/// `close(2)`, out of the writer's own `close(timeout:)`'s way.
private func closeDescriptor(_ descriptor: Int32) {
    _ = close(descriptor)
}

import Dispatch
import Foundation
import NIOCore
import CLinuxEvents
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What a parked HTTP/1.1 connection keeps of its handler: enough to go on where it stopped.
struct ParkedConnection: Sendable, Equatable {
    /// The index of the event loop it came from, and goes back to.
    var loop: Int
    /// When it is closed if nothing comes (uptime nanoseconds, NIO's clock): the `timeouts.idle`
    /// it started when it became idle, not a new one.
    var idleDeadline: UInt64
    /// Requests it has carried: a handover closes only those that carried one.
    var requestsServed: Int
    /// The deployment of its last request: a drain of that deployment closes it.
    var lastDeployment: String?
    var clientAddress: String
    var clientPort: Int
}

/// Idle keep-alive connections held outside NIO: a parked connection is its socket, watched by
/// one thread's epoll, and a `ParkedConnection` of a few dozen bytes.
///
/// Why: an idle HTTP/1.1 connection in a NIO channel costs its channel, pipeline, handler and
/// receive buffer, about 5 KB, whatever the handler does. After `timeouts.park_idle` of silence a
/// cleartext HTTP/1.1 connection with nothing buffered either way is parked: its handler duplicates
/// the socket (`withUnsafeTransportIfAvailable`, NIO's supported way to reach it), hands the copy
/// here and closes its channel (NIO deregisters and closes its own descriptor; the socket lives on
/// in the copy, the client sees nothing). When the client sends its next request (epoll: readable),
/// the socket goes back to the event loop it came from in a new channel with a new handler that
/// knows what `ParkedConnection` kept (`resume`), and is served as if it had never left. A
/// client that closes meanwhile, and a connection whose `timeouts.idle` runs out, are closed here.
///
/// Drains and shutdown reach parked connections per event loop, like the connections in
/// channels: `closeIdle`, `closeServed` (a handover), `closeAll`.
///
/// Hand-written on epoll (Glibc): NIO offers no way to watch a descriptor without a channel, and
/// the channel is the cost this removes. One thread serves the whole worker: it sleeps in
/// `epoll_wait` until a parked client speaks or the earliest idle deadline comes.
///
/// Memory freed by parking goes back to malloc, which keeps it; so that the worker's resident
/// memory shows it, the thread calls `malloc_trim` after many connections were parked (at most
/// every `trimInterval`, off the event loops).
final class IdleParking: Sendable {
    /// A socket going back to its loop, and what it had.
    typealias Resume = @Sendable (_ descriptor: CInt, _ connection: ParkedConnection) -> Void

    private struct Entry {
        var connection: ParkedConnection
        /// Told apart from an earlier socket that had the same descriptor number, whose event may
        /// still be in a batch `epoll_wait` returned.
        var generation: UInt32
    }

    private struct State {
        var parked: [CInt: Entry] = [:]
        var generation: UInt32 = 0
        /// The earliest idle deadline of a parked connection (`.max`: none).
        var nextDeadline = UInt64.max
        var stopped = false
        /// Parked since the last `malloc_trim`, the last park, and that trim (uptime nanoseconds).
        var parkedSinceTrim = 0
        var lastParkAt: UInt64 = 0
        var lastTrimAt: UInt64 = 0

        /// When a trim is due: enough parks since the last, settled, not too soon after it.
        var trimAt: UInt64? {
            guard parkedSinceTrim >= IdleParking.trimAfterParks else { return nil }
            let settled = lastParkAt + IdleParking.trimSettle
            return lastTrimAt == 0 ? settled : max(settled, lastTrimAt + IdleParking.trimInterval)
        }
    }

    /// Parks since the last trim that make the next one worth its time.
    static let trimAfterParks = 256
    /// A trim waits until nothing was parked for `trimSettle` (a burst of parks is over), and
    /// comes at most once per `trimInterval`.
    static let trimSettle: UInt64 = 1_000_000_000
    static let trimInterval: UInt64 = 10_000_000_000

    private let epoll: CInt
    /// Wakes the thread: a deadline earlier than the one it sleeps to, or the stop.
    private let wake: CInt
    private let state = Mutex(State())
    private let resume: Resume
    /// Told +1 for a parked connection and -n for those closed here (a resumed one is counted by
    /// its new channel), so the gateway's count of open connections includes parked ones.
    private let counted: @Sendable (Int) -> Void
    private let stoppedThread = DispatchSemaphore(value: 0)
    /// `http1Parked`, `http1ParkedTotal`, `http1Resumed`, for `/stats`.
    private let traffic: TrafficCounters

    /// Starts the thread. Fails if the kernel refuses an epoll or eventfd descriptor.
    init(traffic: TrafficCounters, resume: @escaping Resume, counted: @escaping @Sendable (Int) -> Void) throws {
        let epoll = epoll_create1(CInt(EPOLL_CLOEXEC))
        guard epoll >= 0 else { throw IOError(errnoCode: errno, reason: "epoll_create1") }
        let wake = eventfd(0, CInt(EFD_CLOEXEC | EFD_NONBLOCK))
        guard wake >= 0 else {
            let code = errno
            Glibc.close(epoll)
            throw IOError(errnoCode: code, reason: "eventfd")
        }
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.u64 = UInt64(UInt32(bitPattern: wake))
        guard epoll_ctl(epoll, EPOLL_CTL_ADD, wake, &event) == 0 else {
            let code = errno
            Glibc.close(epoll)
            Glibc.close(wake)
            throw IOError(errnoCode: code, reason: "epoll_ctl")
        }
        self.epoll = epoll
        self.wake = wake
        self.resume = resume
        self.counted = counted
        self.traffic = traffic
        let thread = Thread { [self] in run() }
        thread.name = "idle-parking"
        thread.start()
    }

    /// Connections parked now.
    var count: Int { state.withLock { $0.parked.count } }

    /// Takes `descriptor` (a socket of a connection whose channel is about to close) and watches
    /// it. False if it could not (stopped, or epoll refused it): the caller still owns it.
    func park(_ descriptor: CInt, _ connection: ParkedConnection) -> Bool {
        let (generation, wakeThread) = state.withLock { state -> (UInt32?, Bool) in
            guard !state.stopped else { return (nil, false) }
            state.generation &+= 1
            state.parked[descriptor] = Entry(connection: connection, generation: state.generation)
            state.parkedSinceTrim += 1
            state.lastParkAt = NIODeadline.now().uptimeNanoseconds
            let earlier = connection.idleDeadline < state.nextDeadline
            if earlier { state.nextDeadline = connection.idleDeadline }
            // A trim is due: the thread should look soon even if no deadline is near.
            return (state.generation, earlier || state.parkedSinceTrim == Self.trimAfterParks)
        }
        guard let generation else { return false }
        var event = epoll_event()
        // One event, then the socket is left alone until it is taken out (EPOLLONESHOT): it goes
        // back to NIO or is closed, never reported twice.
        event.events = EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLONESHOT.rawValue
        event.data.u64 = UInt64(UInt32(bitPattern: descriptor)) | UInt64(generation) << 32
        // Counted before epoll can report it: the thread may close it at once, and its count must
        // not go below zero meanwhile.
        counted(1)
        traffic.http1Parked.add(1, ordering: .relaxed)
        guard epoll_ctl(epoll, EPOLL_CTL_ADD, descriptor, &event) == 0 else {
            state.withLock { state in _ = state.parked.removeValue(forKey: descriptor) }
            counted(-1)
            traffic.http1Parked.subtract(1, ordering: .relaxed)
            return false
        }
        traffic.http1ParkedTotal.add(1, ordering: .relaxed)
        if wakeThread { signal() }
        return true
    }

    /// The parked connections of loop `loop` waiting for their next request close (a drain): all
    /// of them with `deployment` nil, else those whose last request went to `deployment`.
    func closeIdle(loop: Int, deployment: String?) {
        close { $0.loop == loop && (deployment == nil || $0.lastDeployment == deployment) }
    }

    /// A handover: loop `loop`'s parked connections that carried a request close (their clients
    /// send the next one again, to the new worker); one that carried none is served when it speaks.
    func closeServed(loop: Int) {
        close { $0.loop == loop && $0.requestsServed > 0 }
    }

    /// Loop `loop`'s parked connections close (the end of a shutdown).
    func closeAll(loop: Int) {
        close { $0.loop == loop }
    }

    /// Closes every parked connection and stops the thread; waits for it (bounded).
    func stop() {
        let descriptors = state.withLock { state -> [CInt] in
            guard !state.stopped else { return [] }
            state.stopped = true
            let all = Array(state.parked.keys)
            state.parked.removeAll()
            return all
        }
        closeParked(descriptors)
        signal()
        _ = stoppedThread.wait(timeout: .now() + .seconds(5))
    }

    private func close(where matches: (ParkedConnection) -> Bool) {
        let descriptors = state.withLock { state -> [CInt] in
            let closing = state.parked.filter { matches($0.value.connection) }.map(\.key)
            for descriptor in closing { state.parked[descriptor] = nil }
            return closing
        }
        closeParked(descriptors)
    }

    /// Closing a socket takes it out of the epoll set too: the thread holds the only descriptor.
    private func closeParked(_ descriptors: [CInt]) {
        guard !descriptors.isEmpty else { return }
        for descriptor in descriptors { Glibc.close(descriptor) }
        counted(-descriptors.count)
        traffic.http1Parked.subtract(descriptors.count, ordering: .relaxed)
    }

    private func signal() {
        var one: UInt64 = 1
        _ = write(wake, &one, 8)
    }

    // MARK: The thread

    private func run() {
        defer {
            Glibc.close(epoll)
            Glibc.close(wake)
            stoppedThread.signal()
        }
        var events = [epoll_event](repeating: epoll_event(), count: 64)
        while true {
            let now = NIODeadline.now().uptimeNanoseconds
            let (stopped, timeout) = state.withLock { state -> (Bool, CInt) in
                var until = state.nextDeadline
                if let trimAt = state.trimAt { until = min(until, trimAt) }
                if until == .max { return (state.stopped, -1) }
                if until <= now { return (state.stopped, 0) }
                // Rounded up: never woken before the deadline, only just after it.
                return (state.stopped, CInt(clamping: (until - now + 999_999) / 1_000_000))
            }
            if stopped { return }
            let count = events.withUnsafeMutableBufferPointer { epoll_wait(epoll, $0.baseAddress, CInt($0.count), timeout) }
            if count < 0 {
                if errno == EINTR { continue }
                return
            }
            var resuming: [(CInt, ParkedConnection)] = []
            var closing: [CInt] = []
            for index in 0..<Int(count) {
                let event = events[index]
                let descriptor = CInt(bitPattern: UInt32(truncatingIfNeeded: event.data.u64))
                if descriptor == wake {
                    var value: UInt64 = 0
                    _ = read(wake, &value, 8)
                    continue
                }
                let generation = UInt32(truncatingIfNeeded: event.data.u64 >> 32)
                let hangUp = event.events & (EPOLLRDHUP.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0
                // A client that closed, or reset, without a word is closed here; one that sent a
                // request and then closed its side goes back to be answered.
                let gone = hangUp && !Self.hasBytes(descriptor)
                let entry = state.withLock { state -> Entry? in
                    guard let entry = state.parked[descriptor], entry.generation == generation else { return nil }
                    state.parked[descriptor] = nil
                    return entry
                }
                guard let entry else { continue }  // closed by a drain meanwhile
                if gone {
                    closing.append(descriptor)
                } else {
                    resuming.append((descriptor, entry.connection))
                }
            }
            let expiredAt = NIODeadline.now().uptimeNanoseconds
            let (expired, trim) = state.withLock { state -> ([CInt], Bool) in
                var expired: [CInt] = []
                if state.nextDeadline <= expiredAt {
                    var next = UInt64.max
                    for (descriptor, entry) in state.parked {
                        if entry.connection.idleDeadline <= expiredAt {
                            expired.append(descriptor)
                        } else {
                            next = min(next, entry.connection.idleDeadline)
                        }
                    }
                    for descriptor in expired { state.parked[descriptor] = nil }
                    state.nextDeadline = next
                }
                let trim = state.trimAt.map { $0 <= expiredAt } ?? false
                if trim {
                    state.parkedSinceTrim = 0
                    state.lastTrimAt = expiredAt
                }
                return (expired, trim)
            }
            closing += expired
            closeParked(closing)
            for (descriptor, connection) in resuming {
                var none = epoll_event()
                _ = epoll_ctl(epoll, EPOLL_CTL_DEL, descriptor, &none)
                traffic.http1Parked.subtract(1, ordering: .relaxed)
                traffic.http1Resumed.add(1, ordering: .relaxed)
                resume(descriptor, connection)
            }
            if trim { _ = malloc_trim(0) }
        }
    }

    /// Whether the socket has bytes to read (a hang-up event may come with a request before it).
    private static func hasBytes(_ descriptor: CInt) -> Bool {
        var byte: UInt8 = 0
        return recv(descriptor, &byte, 1, CInt(MSG_PEEK | MSG_DONTWAIT)) > 0
    }
}

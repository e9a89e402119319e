import NIOCore

/// The timers of one event loop's connections: a `TimerWheel` driven by a single NIO scheduled
/// callback, which is pending only while the wheel holds an entry.
///
/// The callback runs at the end of the first tick that has something in its bucket (the wheel's
/// `nextDeadline`), advances the wheel to the tick boundary it woke in and sleeps again. An entry
/// fires no earlier than its deadline and about one resolution late at most (plus the loop's
/// own latency). Scheduling, moving and cancelling an entry cost no allocation: only a wake-up
/// earlier than the pending one schedules a NIO callback, and a callback is a task in the loop's
/// heap without a promise or a closure.
///
/// A wake-up that is no longer wanted is not cancelled (NIO cancels by a linear search of the
/// loop's scheduled tasks): it carries a generation, finds it stale when it runs, and does nothing.
///
/// Every call is made on `eventLoop` (checked in debug builds). The wheel holds its entries
/// strongly while they are scheduled: an entry that references these timers (a connection through
/// its loop's context) is cancelled when it ends.
final class LoopTimers {
    let eventLoop: EventLoop
    private let wheel: TimerWheel
    private let clock: () -> NIODeadline
    /// When the pending wake-up runs (uptime nanoseconds); `.max` when none is pending.
    private var wakeAt = UInt64.max
    /// Identifies the pending wake-up; earlier ones that still run are stale.
    private var generation: UInt64 = 0
    /// In a wake-up: scheduling waits for the wheel to say what comes next.
    private var ticking = false

    /// - Parameters:
    ///   - resolution: the tick; an entry fires at most about this late.
    ///   - slotCount: the wheel's buckets, a power of two: one revolution (1024 × 100 ms is about
    ///     100 s) should cover the common timeouts, since an entry further away is looked at once
    ///     per revolution.
    convenience init(eventLoop: EventLoop, resolution: TimeAmount = .milliseconds(100), slotCount: Int = 1024) {
        self.init(eventLoop: eventLoop, resolution: resolution, slotCount: slotCount, clock: { NIODeadline.now() })
    }

    /// `clock`: the time the wheel runs on; NIO's uptime clock unless a test's event loop has a
    /// clock of its own (EmbeddedEventLoop's `now`).
    init(eventLoop: EventLoop, resolution: TimeAmount, slotCount: Int, clock: @escaping () -> NIODeadline) {
        precondition(resolution.nanoseconds > 0, "LoopTimers resolution must be above zero")
        self.eventLoop = eventLoop
        self.clock = clock
        self.wheel = TimerWheel(
            resolution: UInt64(resolution.nanoseconds), slotCount: slotCount, now: clock().uptimeNanoseconds)
    }

    /// Entries scheduled.
    var count: Int { wheel.count }

    /// Schedules `entry` to fire `amount` from now, or moves it there.
    func schedule(_ entry: any TimerWheelEntry, in amount: TimeAmount) {
        schedule(entry, deadline: clock() + amount)
    }

    /// Schedules `entry` to fire at `deadline`, or moves it there. A later deadline is a store in
    /// the entry; an earlier one relinks it.
    func schedule(_ entry: any TimerWheelEntry, deadline: NIODeadline) {
        eventLoop.assertInEventLoop()
        let nanoseconds = deadline.uptimeNanoseconds
        wheel.schedule(entry, deadline: nanoseconds)
        if !ticking {
            wake(at: wheel.fireTime(forDeadline: nanoseconds))
        }
    }

    /// Takes `entry` off the wheel; nothing if it is not scheduled. A wake-up pending for it
    /// still runs and finds nothing.
    func cancel(_ entry: any TimerWheelEntry) {
        eventLoop.assertInEventLoop()
        wheel.cancel(entry)
    }

    /// Makes sure a wake-up runs at `time` or earlier.
    private func wake(at time: UInt64) {
        guard time < wakeAt else { return }
        generation &+= 1
        do {
            try eventLoop.assumeIsolated().scheduleCallback(
                at: .uptimeNanoseconds(time), handler: Wake(timers: self, generation: generation))
            wakeAt = time
        } catch {
            // The loop is shutting down: nothing will run on it again.
            wakeAt = .max
        }
    }

    fileprivate func wakeUp(generation: UInt64) {
        guard generation == self.generation else { return }
        wakeAt = .max
        let now = clock().uptimeNanoseconds
        ticking = true
        // To the tick boundary: the wheel then visits each bucket once per revolution.
        wheel.advance(to: now - now % wheel.resolution)
        ticking = false
        if let next = wheel.nextDeadline {
            wake(at: next)
        }
    }
}

/// A wake-up of `LoopTimers`: a struct small enough to travel in NIO's scheduled task without an
/// allocation of its own.
private struct Wake: NIOScheduledCallbackHandler {
    let timers: LoopTimers
    let generation: UInt64

    func handleScheduledCallback(eventLoop: some EventLoop) {
        timers.wakeUp(generation: generation)
    }
}

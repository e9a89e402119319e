/// Something a `TimerWheel` times: in the gateway, a connection itself, so that timing it costs
/// no allocation and no object of its own (a NIO `Scheduled` costs a promise, its future and
/// closure contexts per connection, and cancelling one scans the loop's whole task heap).
///
/// The entry stores the wheel's bookkeeping in `timerSlot`: it declares
/// `var timerSlot = TimerWheelSlot()` and never touches it otherwise. An entry belongs to at most
/// one wheel at a time.
protocol TimerWheelEntry: AnyObject {
    /// The wheel's links for this entry; only the wheel reads or writes them.
    var timerSlot: TimerWheelSlot { get set }
    /// The entry's deadline passed: called once per `schedule`, from `TimerWheel.advance(to:)`,
    /// after the entry was taken off the wheel. It may schedule itself again, or schedule and
    /// cancel any other entry.
    func timerFired(now: UInt64)
}

/// Where an entry is on its wheel: the links of an intrusive doubly linked list (one list per
/// bucket) and the deadline.
///
/// Why intrusive links rather than a bucket index plus a position in a bucket array: the links
/// live in the entry, so scheduling, moving and cancelling are O(1) pointer updates with no
/// allocation ever (a bucket array grows, reallocates and keeps its largest capacity, and a
/// swap-remove must fix up the entry it moves); and a wheel of 5,000 idle connections needs no
/// storage besides its bucket heads. The cost is 48 bytes inside each entry.
///
/// `next` owns the entry after it (the bucket head owns the first), so the wheel keeps its
/// entries alive while they are scheduled, as a scheduled closure would; `previous` is
/// unowned(unsafe): it is valid exactly while the entry is linked, and costs no reference counting.
struct TimerWheelSlot {
    fileprivate var next: (any TimerWheelEntry)?
    fileprivate unowned(unsafe) var previous: (any TimerWheelEntry)?
    fileprivate var deadlineNanoseconds: UInt64 = 0
    /// The bucket the entry is linked into; -1 when it is not scheduled.
    fileprivate var bucket: Int32 = -1

    init() {}

    var isScheduled: Bool { bucket >= 0 }
    /// The deadline the entry was last scheduled for, while it is scheduled.
    var deadline: UInt64? { isScheduled ? deadlineNanoseconds : nil }
}

/// A hashed timing wheel: one timer mechanism for all the connections of an event loop.
///
/// Time is a `UInt64` of nanoseconds from any origin (the driver uses NIO's uptime clock; tests
/// inject their own). It is cut into ticks of `resolution`; tick `t` ends at `t * resolution`.
/// An entry with deadline `d` belongs to the tick that ends at or after `d`, `ceil(d / resolution)`,
/// and is linked into bucket `tick % slotCount`. A bucket holds the entries of every tick that maps
/// to it (later revolutions wait there, and are skipped until their tick comes). An entry whose
/// tick has already been processed (its deadline passed before it was scheduled) goes to one
/// more list, the overdue one, which the next `advance` fires first.
///
/// - `schedule` to an earlier deadline moves the entry at once (unlink, link: O(1)); to a later
///   one it only rewrites the deadline, and the entry is re-filed when its old bucket comes up
///   (the common case, a keep-alive connection pushing its idle deadline on, is a store).
/// - `advance(to:)` fires every entry whose deadline is at or before `now`, exactly once, tick by
///   tick in order (within a tick, in no particular order). A driver that advances on tick boundaries (as `LoopTimers` does) fires an
///   entry no earlier than its deadline and at most one resolution late, and looks at each
///   bucket once per revolution.
///
/// Owned by one event loop and not thread-safe: every call must come from the same thread (a
/// class, not a struct, so that a `timerFired` may call back into the wheel while it advances).
final class TimerWheel {
    /// Nanoseconds per tick.
    let resolution: UInt64
    /// Buckets; a power of two. A revolution is `slotCount * resolution`.
    let slotCount: Int
    /// Entries scheduled.
    private(set) var count = 0

    private let mask: UInt64
    /// The bucket lists, then the overdue list at index `slotCount`.
    private var heads: ContiguousArray<(any TimerWheelEntry)?>
    private var overdue: Int { slotCount }
    /// The first tick whose bucket `advance` has not processed. An entry whose tick is before it
    /// is overdue; every other one is in a bucket visited at or before its own tick.
    private var nextTick: UInt64
    /// The entry `advance` looks at next in the bucket it walks; `unlink` moves it on when that
    /// entry leaves the bucket, so any entry can be cancelled or moved from a `timerFired`.
    private var cursor: (any TimerWheelEntry)?
    private var advancing = false
    /// How many revolutions `advance` goes through tick by tick when it is behind (a visit of
    /// every bucket each); beyond that it visits the last one only.
    static let catchUpRevolutions: UInt64 = 16

    /// - Parameters:
    ///   - resolution: nanoseconds per tick (the gateway uses 100 ms); above zero.
    ///   - slotCount: buckets, a power of two.
    ///   - now: the current time; deadlines before it fire at the first advance.
    init(resolution: UInt64, slotCount: Int, now: UInt64 = 0) {
        precondition(resolution > 0, "TimerWheel resolution must be above zero")
        precondition(slotCount > 0 && slotCount & (slotCount - 1) == 0, "TimerWheel slotCount must be a power of two")
        precondition(slotCount <= Int(Int32.max), "TimerWheel slotCount too large")
        self.resolution = resolution
        self.slotCount = slotCount
        self.mask = UInt64(slotCount - 1)
        self.heads = ContiguousArray(repeating: nil, count: slotCount + 1)
        self.nextTick = now / resolution + 1
    }

    deinit {
        // Unlinks iteratively: releasing a long chain through its `next` links would recurse
        // once per entry.
        for index in heads.indices {
            while let entry = heads[index] {
                unlink(entry)
            }
        }
    }

    /// Schedules `entry` for `deadline`, or moves it there if it is scheduled already.
    func schedule(_ entry: any TimerWheelEntry, deadline: UInt64) {
        if entry.timerSlot.isScheduled {
            if deadline >= entry.timerSlot.deadlineNanoseconds {
                // Later: the bucket it is in comes up first and re-files it then.
                entry.timerSlot.deadlineNanoseconds = deadline
                return
            }
            unlink(entry)
        } else {
            count += 1
        }
        entry.timerSlot.deadlineNanoseconds = deadline
        link(entry, bucket: bucket(for: deadline))
    }

    /// Takes `entry` off the wheel; nothing if it is not scheduled.
    func cancel(_ entry: any TimerWheelEntry) {
        guard entry.timerSlot.isScheduled else { return }
        unlink(entry)
        count -= 1
    }

    /// Fires, once each, the entries scheduled before this call whose deadline is at or before
    /// `now`: the overdue ones first, then tick by tick.
    ///
    /// An entry that a `timerFired` schedules (again) fires in this call only if its tick is still
    /// to be processed here; one whose deadline has already passed fires in the next call.
    /// Not reentrant: a `timerFired` must not call `advance`.
    func advance(to now: UInt64) {
        precondition(!advancing, "TimerWheel.advance called from a timerFired")
        let lastTick = now / resolution  // the last tick that has ended by `now`
        guard count > 0 else {
            if lastTick >= nextTick { nextTick = lastTick + 1 }
            return
        }
        advancing = true
        defer { advancing = false }
        if heads[overdue] != nil { processOverdue(now: now) }
        if lastTick >= nextTick {
            // The ticks that ended since the last call, in order. Further behind than
            // `catchUpRevolutions` (the loop was blocked, or a test jumped), the last revolution
            // alone visits every bucket once, and what is overdue fires when its bucket comes: in
            // bucket order, not deadline order, but in bounded time.
            let limit = UInt64(slotCount) * Self.catchUpRevolutions
            var tick = lastTick - nextTick >= limit ? lastTick - UInt64(slotCount) + 1 : nextTick
            while tick <= lastTick, count > 0 {
                nextTick = tick + 1
                process(tick: tick, now: now)
                tick += 1
            }
            nextTick = lastTick + 1
        }
        if now % resolution != 0, count > 0 {
            // `now` is inside tick `nextTick`: what is due of it fires too.
            scanPartial(bucket: Int(nextTick & mask), now: now)
        }
    }

    /// The time at which `advance` has something to do: the end of the first tick whose bucket
    /// holds an entry. Nil when the wheel is empty. At most one resolution after the earliest
    /// deadline; it may be earlier (an entry moved later, or one a revolution or more away, is
    /// only re-filed then), and an advance there may fire nothing.
    var nextDeadline: UInt64? {
        guard count > 0 else { return nil }
        var tick = nextTick
        if heads[overdue] != nil { return Self.time(ofTick: tick, resolution: resolution) }
        for _ in 0..<slotCount {
            if heads[Int(tick & mask)] != nil { return Self.time(ofTick: tick, resolution: resolution) }
            tick += 1
        }
        preconditionFailure("TimerWheel holds \(count) entries but no bucket has one")
    }

    /// The tick boundary at which an entry with `deadline`, scheduled now, will be processed.
    func fireTime(forDeadline deadline: UInt64) -> UInt64 {
        Self.time(ofTick: filingTick(for: deadline), resolution: resolution)
    }

    // MARK: Internals

    private static func time(ofTick tick: UInt64, resolution: UInt64) -> UInt64 {
        let (time, overflow) = tick.multipliedReportingOverflow(by: resolution)
        return overflow ? .max : time
    }

    /// The tick that ends at or after `deadline`.
    private func tick(of deadline: UInt64) -> UInt64 {
        deadline / resolution + (deadline % resolution == 0 ? 0 : 1)
    }

    private func filingTick(for deadline: UInt64) -> UInt64 {
        max(tick(of: deadline), nextTick)
    }

    private func bucket(for deadline: UInt64) -> Int {
        let tick = self.tick(of: deadline)
        return tick < nextTick ? overdue : Int(tick & mask)
    }

    /// Fires the overdue entries; one moved later since is filed where it now belongs.
    private func processOverdue(now: UInt64) {
        cursor = heads[overdue]
        while let entry = cursor {
            cursor = entry.timerSlot.next
            let deadline = entry.timerSlot.deadlineNanoseconds
            if deadline <= now {
                unlink(entry)
                count -= 1
                entry.timerFired(now: now)
            } else {
                let target = bucket(for: deadline)
                if target != overdue {
                    unlink(entry)
                    link(entry, bucket: target)
                }
            }
        }
    }

    /// Processes the bucket of `tick`, which has ended: fires what is due by its end, re-files
    /// what was moved later into the bucket of its own tick, leaves later revolutions in place.
    private func process(tick: UInt64, now: UInt64) {
        let bucket = Int(tick & mask)
        cursor = heads[bucket]
        while let entry = cursor {
            cursor = entry.timerSlot.next
            let entryTick = self.tick(of: entry.timerSlot.deadlineNanoseconds)
            if entryTick <= tick {
                unlink(entry)
                count -= 1
                entry.timerFired(now: now)
            } else {
                let target = Int(entryTick & mask)
                if target != bucket {
                    unlink(entry)
                    link(entry, bucket: target)
                }
            }
        }
    }

    /// Fires the entries of `bucket` that are due by `now`, inside the tick not yet ended.
    private func scanPartial(bucket: Int, now: UInt64) {
        cursor = heads[bucket]
        while let entry = cursor {
            cursor = entry.timerSlot.next
            if entry.timerSlot.deadlineNanoseconds <= now {
                unlink(entry)
                count -= 1
                entry.timerFired(now: now)
            }
        }
    }

    private func link(_ entry: any TimerWheelEntry, bucket: Int) {
        let head = heads[bucket]
        entry.timerSlot.next = head
        entry.timerSlot.previous = nil
        entry.timerSlot.bucket = Int32(truncatingIfNeeded: bucket)
        head?.timerSlot.previous = entry
        heads[bucket] = entry
    }

    /// Unlinks a linked entry; `count` is the caller's.
    private func unlink(_ entry: any TimerWheelEntry) {
        let next = entry.timerSlot.next
        let previous = entry.timerSlot.previous
        if let cursor, cursor === entry { self.cursor = next }
        if let next { next.timerSlot.previous = previous }
        entry.timerSlot.next = nil
        entry.timerSlot.previous = nil
        let bucket = Int(entry.timerSlot.bucket)
        entry.timerSlot.bucket = -1
        // Last: this may release the wheel's reference to the entry (the caller holds one).
        if let previous {
            previous.timerSlot.next = next
        } else {
            heads[bucket] = next
        }
    }
}

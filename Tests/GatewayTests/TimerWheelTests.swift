import Testing

@testable import Gateway

/// An entry that records when it fired and may act from `timerFired`.
private final class Probe: TimerWheelEntry {
    var timerSlot = TimerWheelSlot()
    let id: Int
    var fired: [UInt64] = []
    var onFire: ((Probe, UInt64) -> Void)?
    private let log: Log?

    init(_ id: Int, log: Log? = nil) {
        self.id = id
        self.log = log
    }

    func timerFired(now: UInt64) {
        fired.append(now)
        log?.ids.append(id)
        onFire?(self, now)
    }
}

private final class Log {
    var ids: [Int] = []
}

/// A deterministic generator, so a failing run can be replayed.
private struct WheelTestRandom: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

private let ms: UInt64 = 1_000_000

@Suite struct TimerWheelTests {
    @Test func theSlotInsideAnEntryStaysSmall() {
        // Two links of two words each, the deadline, the bucket: what an entry pays to be timed.
        #expect(MemoryLayout<TimerWheelSlot>.stride <= 48)
    }

    @Test func anEmptyWheelHasNoNextDeadline() {
        let wheel = TimerWheel(resolution: 100 * ms, slotCount: 16)
        #expect(wheel.count == 0)
        #expect(wheel.nextDeadline == nil)
        wheel.advance(to: 10_000 * ms)
        #expect(wheel.nextDeadline == nil)
    }

    @Test func entriesFireInTheOrderOfTheirTicks() {
        let wheel = TimerWheel(resolution: 10 * ms, slotCount: 8)
        let log = Log()
        // Spread over several revolutions (a revolution is 80 ms), scheduled out of order.
        let deadlines: [UInt64] = [250, 15, 95, 5, 170, 40, 330, 61, 88, 120]
        let probes = deadlines.enumerated().map { Probe($0.offset, log: log) }
        for (probe, deadline) in zip(probes, deadlines) {
            wheel.schedule(probe, deadline: deadline * ms)
        }
        #expect(wheel.count == deadlines.count)
        wheel.advance(to: 400 * ms)
        let firedDeadlines = log.ids.map { deadlines[$0] }
        #expect(firedDeadlines == deadlines.sorted())
        #expect(wheel.count == 0)
        #expect(probes.allSatisfy { $0.fired.count == 1 && !$0.timerSlot.isScheduled })
    }

    @Test func anEntryFiresAtItsDeadlineAndNotBefore() {
        let wheel = TimerWheel(resolution: 100 * ms, slotCount: 16)
        let onBoundary = Probe(0)
        let inside = Probe(1)
        wheel.schedule(onBoundary, deadline: 500 * ms)
        wheel.schedule(inside, deadline: 730 * ms)
        #expect(wheel.nextDeadline == 500 * ms)
        wheel.advance(to: 500 * ms - 1)
        #expect(onBoundary.fired.isEmpty)
        wheel.advance(to: 500 * ms)
        #expect(onBoundary.fired == [500 * ms])
        // The end of the tick that holds 730 ms.
        #expect(wheel.nextDeadline == 800 * ms)
        wheel.advance(to: 729 * ms)
        #expect(inside.fired.isEmpty)
        // Between tick boundaries the deadline itself counts.
        wheel.advance(to: 730 * ms)
        #expect(inside.fired == [730 * ms])
        #expect(wheel.count == 0)
    }

    @Test func aDriverOnTickBoundariesIsNeverEarlyAndAtMostOneResolutionLate() throws {
        let resolution = 100 * ms
        let wheel = TimerWheel(resolution: resolution, slotCount: 64)
        var random = WheelTestRandom(state: 7)
        let probes = (0..<2_000).map { Probe($0) }
        var deadlines: [UInt64] = []
        for probe in probes {
            let deadline = UInt64.random(in: 1...20_000, using: &random) * ms
            deadlines.append(deadline)
            wheel.schedule(probe, deadline: deadline)
        }
        var now: UInt64 = 0
        while wheel.count > 0 {
            let next = try #require(wheel.nextDeadline)
            #expect(next > now && next % resolution == 0)
            now = next
            wheel.advance(to: now)
        }
        for (probe, deadline) in zip(probes, deadlines) {
            #expect(probe.fired.count == 1)
            let fired = probe.fired[0]
            #expect(fired >= deadline && fired - deadline < resolution)
        }
    }

    @Test func movingEarlierFiresAtTheNewDeadline() {
        let wheel = TimerWheel(resolution: 10 * ms, slotCount: 16)
        let probe = Probe(0)
        wheel.schedule(probe, deadline: 10_000 * ms)
        wheel.schedule(probe, deadline: 50 * ms)
        #expect(wheel.count == 1)
        #expect(probe.timerSlot.deadline == 50 * ms)
        #expect(wheel.nextDeadline == 50 * ms)
        wheel.advance(to: 49 * ms)
        #expect(probe.fired.isEmpty)
        wheel.advance(to: 50 * ms)
        #expect(probe.fired == [50 * ms])
        wheel.advance(to: 20_000 * ms)
        #expect(probe.fired.count == 1)
    }

    @Test func movingLaterIsHonouredAcrossRevolutions() {
        let wheel = TimerWheel(resolution: 10 * ms, slotCount: 8)
        let probe = Probe(0)
        wheel.schedule(probe, deadline: 30 * ms)
        // Pushed on again and again, as a keep-alive connection pushes its idle deadline.
        for step in UInt64(1)...50 {
            wheel.schedule(probe, deadline: (30 + step * 7) * ms)
        }
        let deadline: UInt64 = (30 + 50 * 7) * ms
        #expect(probe.timerSlot.deadline == deadline)
        #expect(wheel.count == 1)
        var now: UInt64 = 0
        while now < deadline - ms {
            now += ms
            wheel.advance(to: now)
            #expect(probe.fired.isEmpty)
        }
        wheel.advance(to: deadline)
        #expect(probe.fired == [deadline])
        #expect(wheel.count == 0)
    }

    @Test func movingLaterWhileTheWheelRunsIsReFiledWhenItsBucketComes() {
        let wheel = TimerWheel(resolution: 10 * ms, slotCount: 8)
        let probe = Probe(0)
        wheel.schedule(probe, deadline: 20 * ms)
        var now: UInt64 = 0
        var deadline: UInt64 = 20 * ms
        // Each time its bucket is about to come up the deadline moves on by 25 ms.
        for _ in 0..<40 {
            deadline += 25 * ms
            wheel.schedule(probe, deadline: deadline)
            now += 25 * ms
            wheel.advance(to: now)
            #expect(probe.fired.isEmpty)
        }
        wheel.advance(to: deadline)
        #expect(probe.fired == [deadline])
    }

    @Test func aCancelledEntryNeverFires() {
        let wheel = TimerWheel(resolution: 10 * ms, slotCount: 8)
        let kept = Probe(0)
        let cancelled = Probe(1)
        wheel.schedule(kept, deadline: 40 * ms)
        wheel.schedule(cancelled, deadline: 40 * ms)
        wheel.cancel(cancelled)
        wheel.cancel(cancelled)  // twice is nothing
        #expect(wheel.count == 1)
        #expect(!cancelled.timerSlot.isScheduled)
        wheel.advance(to: 1_000 * ms)
        #expect(kept.fired.count == 1)
        #expect(cancelled.fired.isEmpty)
        // Cancelling what is not scheduled, or was fired, is nothing too.
        wheel.cancel(kept)
        #expect(wheel.count == 0)
    }

    @Test func anEntryMayRescheduleItselfFromTimerFired() {
        let wheel = TimerWheel(resolution: 10 * ms, slotCount: 8)
        let periodic = Probe(0)
        periodic.onFire = { probe, now in
            if probe.fired.count < 5 { wheel.schedule(probe, deadline: now + 100 * ms) }
        }
        wheel.schedule(periodic, deadline: 100 * ms)
        var now: UInt64 = 0
        while now < 1_000 * ms {
            now += 10 * ms
            wheel.advance(to: now)
        }
        #expect(periodic.fired == [100, 200, 300, 400, 500].map { $0 * ms })
        #expect(wheel.count == 0)
    }

    @Test func anEntryMayCancelItselfAfterReschedulingFromTimerFired() {
        let wheel = TimerWheel(resolution: 10 * ms, slotCount: 8)
        let probe = Probe(0)
        probe.onFire = { probe, now in
            wheel.schedule(probe, deadline: now + 10 * ms)
            wheel.cancel(probe)
        }
        wheel.schedule(probe, deadline: 30 * ms)
        wheel.advance(to: 500 * ms)
        #expect(probe.fired == [500 * ms])
        #expect(wheel.count == 0)
        #expect(wheel.nextDeadline == nil)
    }

    @Test func anEntryFiredFirstMayCancelTheOtherOfItsTick() {
        // Same tick, same bucket: whichever the wheel visits first cancels the other.
        let wheel = TimerWheel(resolution: 10 * ms, slotCount: 8)
        let first = Probe(0)
        let second = Probe(1)
        first.onFire = { _, _ in wheel.cancel(second) }
        second.onFire = { _, _ in wheel.cancel(first) }
        wheel.schedule(first, deadline: 25 * ms)
        wheel.schedule(second, deadline: 27 * ms)
        wheel.advance(to: 100 * ms)
        #expect(first.fired.count + second.fired.count == 1)
        #expect(wheel.count == 0)
    }

    @Test func cancellingAndMovingOthersWhileABucketIsWalkedIsSafe() {
        // 50 entries in one tick: each one fired cancels the next two not yet fired and moves a
        // third later; the rest still fires exactly once, the cancelled never.
        let wheel = TimerWheel(resolution: 10 * ms, slotCount: 8)
        let probes = (0..<50).map { Probe($0) }
        var cancelled = Set<Int>()
        var moved = Set<Int>()
        for probe in probes {
            probe.onFire = { _, _ in
                let waiting = probes.filter { $0.timerSlot.isScheduled && !moved.contains($0.id) }
                for victim in waiting.prefix(2) {
                    wheel.cancel(victim)
                    cancelled.insert(victim.id)
                }
                if let later = waiting.dropFirst(2).first {
                    wheel.schedule(later, deadline: 500 * ms)
                    moved.insert(later.id)
                }
            }
            wheel.schedule(probe, deadline: 45 * ms)
        }
        wheel.advance(to: 50 * ms)
        for probe in probes {
            if cancelled.contains(probe.id) {
                #expect(probe.fired.isEmpty)
            } else if moved.contains(probe.id) {
                #expect(probe.fired.isEmpty)
                #expect(probe.timerSlot.deadline == 500 * ms)
            } else {
                #expect(probe.fired == [50 * ms])
            }
        }
        #expect(!cancelled.isEmpty && !moved.isEmpty)
        #expect(wheel.count == moved.count)
        wheel.advance(to: 500 * ms)
        #expect(probes.filter { moved.contains($0.id) }.allSatisfy { $0.fired == [500 * ms] })
        #expect(wheel.count == 0)
    }

    @Test func anEntryScheduledForAPassedDeadlineFiresAtTheNextAdvance() {
        let wheel = TimerWheel(resolution: 100 * ms, slotCount: 16, now: 1_000 * ms)
        let probe = Probe(0)
        wheel.schedule(probe, deadline: 200 * ms)
        #expect(wheel.nextDeadline == 1_100 * ms)
        #expect(wheel.fireTime(forDeadline: 200 * ms) == 1_100 * ms)
        wheel.advance(to: 1_000 * ms)
        #expect(probe.fired == [1_000 * ms])

        // From a timerFired: not in the same advance (no endless loop), in the next one.
        let again = Probe(1)
        again.onFire = { probe, now in
            if probe.fired.count < 3 { wheel.schedule(probe, deadline: now - 50 * ms) }
        }
        wheel.schedule(again, deadline: 1_050 * ms)
        wheel.advance(to: 1_100 * ms)
        #expect(again.fired == [1_100 * ms])
        wheel.advance(to: 1_100 * ms)
        #expect(again.fired == [1_100 * ms, 1_100 * ms])
        wheel.advance(to: 1_130 * ms)
        #expect(again.fired.count == 3)
        #expect(wheel.count == 0)
    }

    @Test func deadlinesManyRevolutionsAwayFireOnTime() {
        // A revolution is 8 × 10 ms; these are up to 1,000 revolutions away.
        let wheel = TimerWheel(resolution: 10 * ms, slotCount: 8)
        let deadlines: [UInt64] = [80, 81, 800, 7_999, 8_000, 8_001, 80_000, 79_995].map { $0 * ms }
        let probes = deadlines.indices.map { Probe($0) }
        for (probe, deadline) in zip(probes, deadlines) { wheel.schedule(probe, deadline: deadline) }
        var now: UInt64 = 0
        while let next = wheel.nextDeadline {
            now = next
            wheel.advance(to: now)
        }
        for (probe, deadline) in zip(probes, deadlines) {
            #expect(probe.fired.count == 1)
            #expect(probe.fired[0] >= deadline && probe.fired[0] - deadline < 10 * ms)
        }
    }

    @Test func oneLongJumpFiresEverythingDueAndKeepsTheRest() {
        // The loop was blocked for many revolutions: one advance fires every entry due, once.
        let wheel = TimerWheel(resolution: 10 * ms, slotCount: 8)
        var random = WheelTestRandom(state: 11)
        let probes = (0..<500).map { Probe($0) }
        var deadlines: [UInt64] = []
        for probe in probes {
            let deadline = UInt64.random(in: 0...100_000, using: &random) * ms
            deadlines.append(deadline)
            wheel.schedule(probe, deadline: deadline)
        }
        let jump: UInt64 = 50_003 * ms
        wheel.advance(to: jump)
        for (probe, deadline) in zip(probes, deadlines) {
            #expect(probe.fired == (deadline <= jump ? [jump] : []))
        }
        wheel.advance(to: 100_000 * ms)
        #expect(probes.allSatisfy { $0.fired.count == 1 })
        #expect(wheel.count == 0)
    }

    @Test func tenThousandEntriesFireExactlyOnceEach() {
        let wheel = TimerWheel(resolution: 100 * ms, slotCount: 1024)
        var random = WheelTestRandom(state: 42)
        let probes = (0..<10_000).map { Probe($0) }
        var deadlines: [UInt64] = []
        for probe in probes {
            // Up to 300 s: about three revolutions.
            let deadline = UInt64.random(in: 1...300_000, using: &random) * ms
            deadlines.append(deadline)
            wheel.schedule(probe, deadline: deadline)
        }
        // A third moved earlier, a third later, a tenth cancelled.
        for index in stride(from: 0, to: probes.count, by: 3) {
            deadlines[index] /= 2
            wheel.schedule(probes[index], deadline: deadlines[index])
        }
        for index in stride(from: 1, to: probes.count, by: 3) {
            deadlines[index] += 60_000 * ms
            wheel.schedule(probes[index], deadline: deadlines[index])
        }
        var cancelled = Set<Int>()
        for index in stride(from: 0, to: probes.count, by: 10) {
            wheel.cancel(probes[index])
            cancelled.insert(index)
        }
        #expect(wheel.count == probes.count - cancelled.count)
        var now: UInt64 = 0
        var advances = 0
        while let next = wheel.nextDeadline {
            now = next
            wheel.advance(to: now)
            advances += 1
        }
        #expect(wheel.count == 0)
        #expect(advances <= 360_000 / 100)
        for (index, probe) in probes.enumerated() {
            if cancelled.contains(index) {
                #expect(probe.fired.isEmpty)
            } else {
                #expect(probe.fired.count == 1)
                #expect(probe.fired[0] >= deadlines[index] && probe.fired[0] - deadlines[index] < 100 * ms)
            }
        }
    }

    @Test func randomOperationsMatchAModelExactly() {
        // Against a dictionary of deadlines: after every advance(to: now) exactly the entries
        // scheduled with a deadline at or before `now` have fired, each once.
        let resolution = 10 * ms
        let wheel = TimerWheel(resolution: resolution, slotCount: 16, now: 0)
        var random = WheelTestRandom(state: 2024)
        let probes = (0..<300).map { Probe($0) }
        var model: [Int: UInt64] = [:]
        var firings = [Int](repeating: 0, count: probes.count)
        var now: UInt64 = 0
        for _ in 0..<20_000 {
            let probe = probes[Int.random(in: 0..<probes.count, using: &random)]
            switch UInt64.random(in: 0..<10, using: &random) {
            case 0..<5:
                // Up to about three revolutions away; sometimes already passed.
                let deadline = now &+ UInt64.random(in: 0...500, using: &random) * ms &- 20 * ms
                let clamped = deadline > now &+ 1_000 * ms ? 0 : deadline
                wheel.schedule(probe, deadline: clamped)
                model[probe.id] = clamped
            case 5..<7:
                wheel.cancel(probe)
                model[probe.id] = nil
            default:
                // Sometimes on a boundary, sometimes inside a tick, sometimes not at all.
                let step = UInt64.random(in: 0...3, using: &random) * resolution
                    + (Bool.random(using: &random) ? UInt64.random(in: 0..<resolution, using: &random) : 0)
                now += step
                wheel.advance(to: now)
                let due = model.filter { $0.value <= now }
                for (id, _) in due {
                    firings[id] += 1
                    model[id] = nil
                }
                for probe in probes {
                    #expect(probe.fired.count == firings[probe.id], "probe \(probe.id) at \(now)")
                }
            }
            #expect(wheel.count == model.count)
        }
    }

    @Test func aWheelReleasedWithALongChainDoesNotRecurse() {
        // 200,000 entries in one bucket held by the wheel alone: its deinit unlinks them one by
        // one instead of releasing the chain recursively.
        var wheel: TimerWheel? = TimerWheel(resolution: 10 * ms, slotCount: 8)
        weak var first: Probe?
        do {
            let probe = Probe(0)
            first = probe
            wheel!.schedule(probe, deadline: 50 * ms)
        }
        for id in 1..<200_000 {
            wheel!.schedule(Probe(id), deadline: 50 * ms)
        }
        #expect(first != nil)  // the wheel keeps scheduled entries alive
        wheel = nil
        #expect(first == nil)
    }
}

import NIOCore
import NIOEmbedded
import NIOPosix
import Testing

@testable import Gateway

/// An entry that completes a promise with the uptime at which it fired.
private final class Alarm: TimerWheelEntry {
    var timerSlot = TimerWheelSlot()
    let promise: EventLoopPromise<UInt64>
    var firings = 0
    var onFire: ((Alarm) -> Void)?

    init(on loop: EventLoop) {
        promise = loop.makePromise()
    }

    func timerFired(now: UInt64) {
        firings += 1
        if firings == 1 { promise.succeed(NIODeadline.now().uptimeNanoseconds) }
        onFire?(self)
    }
}

private struct TimedOut: Error {}

/// Runs `body` on a group of one event loop, which is shut down after it.
private func withOneLoop(_ body: (EventLoop) async throws -> Void) async throws {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    do {
        try await body(group.next())
    } catch {
        try? await group.shutdownGracefully()
        throw error
    }
    try await group.shutdownGracefully()
}

/// The wait for an alarm is bounded: after `limit` its promise fails instead.
private func bounded(_ alarm: Alarm, on loop: EventLoop, limit: TimeAmount = .seconds(10)) -> EventLoopFuture<UInt64> {
    let promise = alarm.promise
    let guardTask = loop.scheduleTask(in: limit) { promise.fail(TimedOut()) }
    promise.futureResult.whenComplete { _ in guardTask.cancel() }
    return promise.futureResult
}

/// An entry of the embedded tests: counts its firings.
private final class Counter: TimerWheelEntry {
    var timerSlot = TimerWheelSlot()
    var fired: [NIODeadline] = []
    let loop: EmbeddedEventLoop

    init(loop: EmbeddedEventLoop) {
        self.loop = loop
    }

    func timerFired(now: UInt64) {
        fired.append(loop.now)
    }
}

@Suite struct LoopTimersTests {
    @Test func entriesFireOnARealLoopNeverEarly() async throws {
        try await withOneLoop { loop in
            let resolution = TimeAmount.milliseconds(10)
            let delays = [30, 10, 70, 50, 20, 100, 5, 60].map { TimeAmount.milliseconds($0) }

            let started = try await loop.submit { () -> [EventLoopFuture<(UInt64, UInt64)>] in
                let timers = LoopTimers(eventLoop: loop, resolution: resolution, slotCount: 64)
                return delays.map { delay in
                    let alarm = Alarm(on: loop)
                    let deadline = NIODeadline.now() + delay
                    timers.schedule(alarm, deadline: deadline)
                    return bounded(alarm, on: loop).map { (deadline.uptimeNanoseconds, $0) }
                }
            }.get()
            for future in started {
                let (deadline, fired) = try await future.get()
                #expect(fired >= deadline)
                // One resolution late at most by design; the loop on a busy machine may add more.
                #expect(fired - deadline < UInt64(TimeAmount.seconds(2).nanoseconds))
            }
        }
    }

    @Test func aDeadlineMovedEarlierWakesTheLoopEarlier() async throws {
        try await withOneLoop { loop in
            let start = NIODeadline.now()
            let fired = try await loop.submit { () -> EventLoopFuture<UInt64> in
                let timers = LoopTimers(eventLoop: loop, resolution: .milliseconds(10), slotCount: 64)
                let alarm = Alarm(on: loop)
                // First far away (the loop's wake-up goes there), then soon.
                timers.schedule(alarm, in: .seconds(60))
                timers.schedule(alarm, in: .milliseconds(30))
                return bounded(alarm, on: loop)
            }.get().get()
            let elapsed = fired - start.uptimeNanoseconds
            #expect(elapsed >= UInt64(TimeAmount.milliseconds(30).nanoseconds))
            #expect(elapsed < UInt64(TimeAmount.seconds(10).nanoseconds))
        }
    }

    @Test func aCancelledEntryDoesNotFireAndTheOthersDo() async throws {
        try await withOneLoop { loop in
            let (later, cancelledFirings, timersBound) = try await loop.submit {
                () -> (EventLoopFuture<UInt64>, NIOLoopBound<Alarm>, NIOLoopBound<LoopTimers>) in
                let timers = LoopTimers(eventLoop: loop, resolution: .milliseconds(10), slotCount: 64)
                let cancelled = Alarm(on: loop)
                let kept = Alarm(on: loop)
                timers.schedule(cancelled, in: .milliseconds(20))
                timers.schedule(kept, in: .milliseconds(60))
                timers.cancel(cancelled)
                return (
                    bounded(kept, on: loop), NIOLoopBound(cancelled, eventLoop: loop),
                    NIOLoopBound(timers, eventLoop: loop)
                )
            }.get()
            _ = try await later.get()
            // The cancelled one was due before the kept one fired.
            let (firings, count) = try await loop.submit {
                // Its promise is settled here, since its timer never will.
                cancelledFirings.value.promise.succeed(0)
                return (cancelledFirings.value.firings, timersBound.value.count)
            }.get()
            #expect(firings == 0)
            #expect(count == 0)
        }
    }

    @Test func theTimersStopWhenEmptyAndStartAgain() async throws {
        try await withOneLoop { loop in
            let timersBound = try await loop.submit {
                NIOLoopBound(LoopTimers(eventLoop: loop, resolution: .milliseconds(10), slotCount: 16), eventLoop: loop)
            }.get()
            for round in 0..<3 {
                // Each round after the wheel ran empty: the next schedule arms a new wake-up. The
                // last round is further than a revolution (160 ms) away.
                let delay = TimeAmount.milliseconds(round == 2 ? 400 : 20)
                let future = try await loop.submit { () -> EventLoopFuture<UInt64> in
                    let alarm = Alarm(on: loop)
                    timersBound.value.schedule(alarm, in: delay)
                    return bounded(alarm, on: loop)
                }.get()
                _ = try await future.get()
                #expect(try await loop.submit { timersBound.value.count }.get() == 0)
            }
        }
    }

    @Test func anEntryMayRescheduleItselfOnARealLoop() async throws {
        try await withOneLoop { loop in
            let done = try await loop.submit { () -> EventLoopFuture<Int> in
                let timers = LoopTimers(eventLoop: loop, resolution: .milliseconds(5), slotCount: 16)
                let promise = loop.makePromise(of: Int.self)
                let alarm = Alarm(on: loop)
                alarm.onFire = { alarm in
                    if alarm.firings < 5 {
                        timers.schedule(alarm, in: .milliseconds(15))
                    } else {
                        promise.succeed(alarm.firings)
                    }
                }
                timers.schedule(alarm, in: .milliseconds(15))
                let guardTask = loop.scheduleTask(in: .seconds(10)) { promise.fail(TimedOut()) }
                promise.futureResult.whenComplete { _ in guardTask.cancel() }
                return promise.futureResult
            }.get()
            #expect(try await done.get() == 5)
        }
    }

    @Test func onAnEmbeddedLoopTheTimersFollowItsClock() throws {
        let loop = EmbeddedEventLoop()
        let timers = LoopTimers(
            eventLoop: loop, resolution: .milliseconds(100), slotCount: 64, clock: { loop.now })
        let start = loop.now
        let onBoundary = Counter(loop: loop)
        let inside = Counter(loop: loop)
        let far = Counter(loop: loop)
        let cancelled = Counter(loop: loop)
        timers.schedule(onBoundary, in: .seconds(1))
        timers.schedule(inside, in: .milliseconds(1_050))
        timers.schedule(far, in: .seconds(30))  // several revolutions (6.4 s) away
        timers.schedule(cancelled, in: .milliseconds(500))
        timers.cancel(cancelled)
        #expect(timers.count == 3)

        loop.advanceTime(by: .milliseconds(999))
        #expect(onBoundary.fired.isEmpty)
        loop.advanceTime(by: .milliseconds(1))
        #expect(onBoundary.fired == [start + .seconds(1)])
        // 1,050 ms fires at the end of its tick, 1,100 ms, not before.
        loop.advanceTime(by: .milliseconds(99))
        #expect(inside.fired.isEmpty)
        loop.advanceTime(by: .milliseconds(1))
        #expect(inside.fired == [start + .milliseconds(1_100)])

        // Moved later (a store), then earlier (a relink and an earlier wake-up).
        timers.schedule(far, in: .seconds(60))
        timers.schedule(far, in: .seconds(2))
        loop.advanceTime(by: .milliseconds(1_999))
        #expect(far.fired.isEmpty)
        loop.advanceTime(by: .milliseconds(1))
        #expect(far.fired == [start + .milliseconds(3_100)])
        #expect(timers.count == 0)
        #expect(cancelled.fired.isEmpty)

        // Empty: nothing pending any more; a new entry arms it again.
        loop.advanceTime(by: .seconds(100))
        timers.schedule(onBoundary, in: .milliseconds(250))
        loop.advanceTime(by: .milliseconds(300))
        #expect(onBoundary.fired.count == 2)
        try loop.syncShutdownGracefully()
    }
}

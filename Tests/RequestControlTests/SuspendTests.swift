import Synchronization
import Testing

@testable import RequestControl

@Suite("Suspend and resume", .timeLimit(.minutes(1)))
struct SuspendTests {
    @Test func everyScopeStartsRunning() throws {
        let controller = RequestController(configuration: makeConfiguration())
        for scope: SuspendScope in [
            .gateway, .deployment("shop"), .entryPoint(deployment: "blog", entryPoint: "http"),
            .backend(deployment: "shop", address: "127.0.0.1:9002"),
        ] {
            #expect(try controller.state(of: scope) == .running)
        }
        #expect(!controller.point("shop", "http").isDraining)
    }

    @Test func suspendWithNothingInFlightDrainsAtOnce() async throws {
        let controller = RequestController(configuration: makeConfiguration())
        let events = StateEvents(controller)
        let result = try await controller.suspend(.deployment("shop"), timeout: .forever)
        #expect(result == SuspendResult(drained: true, active: 0, state: .suspended, cancelled: false))
        #expect(controller.point("shop", "http").rejection() == .suspended)
        #expect(controller.point("shop", "admin").rejection() == .suspended)
        #expect(controller.point("blog", "http").rejection() == nil)
        #expect(try await controller.resume(.deployment("shop")) == .running)
        #expect(controller.point("shop", "http").rejection() == nil)
        let shop = SuspendScope.deployment("shop")
        #expect(events.all.map(\.state) == [.preSuspend, .suspending, .suspended, .running])
        #expect(events.all.allSatisfy { $0.scope == shop })
    }

    /// The suspend returns when the last request completes, not before and not on a tick.
    @Test func suspendReturnsWhenTheLastRequestCompletes() async throws {
        let controller = RequestController(configuration: makeConfiguration())
        let events = StateEvents(controller)
        let http = controller.point("shop", "http")
        let first = http.admit(), last = http.admit()
        let suspend = Task { try await controller.suspend(.gateway, timeout: .forever) }
        await events.wait(for: .gateway, .suspending)
        #expect(http.isDraining)
        #expect(http.rejection() == .suspended)
        first?.complete(status: 200)
        #expect(try controller.state(of: .gateway) == .suspending)  // one still in flight
        let clock = ContinuousClock()
        let completedAt = clock.now
        last?.complete(status: 200)
        let result = try await suspend.value
        #expect(clock.now - completedAt < .seconds(1))
        #expect(result == SuspendResult(drained: true, active: 0, state: .suspended, cancelled: false))
        #expect(controller.snapshot().deployments[0].entryPoints[0].status.success == 2)
    }

    @Test func timeoutReturnsWithTheRemainingCount() async throws {
        let controller = RequestController(configuration: makeConfiguration())
        let http = controller.point("shop", "http")
        let a = http.admit(), b = http.admit()
        let clock = ContinuousClock()
        let start = clock.now
        let result = try await controller.suspend(.entryPoint(deployment: "shop", entryPoint: "http"), timeout: .after(.milliseconds(100)))
        #expect(clock.now - start >= .milliseconds(100))
        #expect(result == SuspendResult(drained: false, active: 2, state: .suspended, cancelled: false))
        a?.complete(status: 200)
        b?.complete(status: nil)
        #expect(controller.snapshot().deployments[0].entryPoints[0].active == 0)
        // Suspending it again (already SUSPENDED, now empty) reports the drain.
        let again = try await controller.suspend(.entryPoint(deployment: "shop", entryPoint: "http"), timeout: .noWait)
        #expect(again == SuspendResult(drained: true, active: 0, state: .suspended, cancelled: false))
    }

    @Test func noWaitStopsAdmittingWithoutWaiting() async throws {
        let controller = RequestController(configuration: makeConfiguration())
        let http = controller.point("shop", "http")
        let token = http.admit()
        let result = try await controller.suspend(.gateway, timeout: .noWait)
        #expect(result == SuspendResult(drained: false, active: 1, state: .suspended, cancelled: false))
        #expect(http.rejection() == .suspended)
        token?.complete(status: 200)
        #expect(controller.snapshot().active == 0)
    }

    @Test func resumeDuringSuspendingCancelsTheSuspend() async throws {
        let controller = RequestController(configuration: makeConfiguration())
        let events = StateEvents(controller)
        let http = controller.point("shop", "http")
        let token = http.admit()
        let suspend = Task { try await controller.suspend(.deployment("shop"), timeout: .forever) }
        await events.wait(for: .deployment("shop"), .suspending)
        #expect(try await controller.resume(.deployment("shop")) == .running)
        let result = try await suspend.value
        #expect(result == SuspendResult(drained: false, active: 1, state: .running, cancelled: true))
        #expect(!http.isDraining)
        #expect(http.rejection() == nil)
        token?.complete(status: 200)
        #expect(try controller.state(of: .deployment("shop")) == .running)
    }

    /// A resume during PRE_SUSPEND does not wait for a hanging activity or its timeout.
    @Test func resumeDuringPreSuspendCancelsPromptly() async throws {
        let controller = RequestController(configuration: makeConfiguration(), preSuspendTimeout: .seconds(3600))
        let events = StateEvents(controller)
        let hang = Gate()
        controller.register(RecordingActivity("lb", shared: .init(), hang: hang), group: 0)
        let suspend = Task { try await controller.suspend(.gateway, timeout: .forever) }
        await events.wait(for: .gateway, .preSuspend)
        try await controller.resume(.gateway)
        let result = try await suspend.value
        #expect(result.cancelled)
        #expect(result.state == .running)
        #expect(controller.point("shop", "http").rejection() == nil)
        hang.open()
    }

    /// Hammer tasks and a suspend: once the drain is reported, nothing more is admitted.
    @Test func nothingIsAdmittedAfterTheDrainWasReported() async throws {
        let controller = RequestController(configuration: makeConfiguration())
        let points = [controller.point("shop", "http"), controller.point("shop", "admin"), controller.point("blog", "http")]
        let drainReported = SharedFlag()
        let admittedAfter = SharedCount()
        let attemptsAfter = SharedCount()
        let warmedUp = Gate()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<4 {
                let point = points[task % points.count]
                group.addTask {
                    var after = 0
                    var i = 0
                    while after < 20_000 && i < 20_000_000 {
                        i += 1
                        let reported = drainReported.isSet
                        if reported {
                            after += 1
                            attemptsAfter.increment()
                        }
                        switch point.beginRequest() {
                        case .run(let token):
                            // Holding a slot once the drain was reported (or the scope is
                            // SUSPENDED after a drain without timeout) is the bug.
                            if reported || drainReported.isSet || (try? controller.state(of: .gateway)) == .suspended {
                                admittedAfter.increment()
                            }
                            token.complete(status: 200)
                        case .rejected(let reason):
                            #expect(reason == .suspended)
                        }
                        if i == 50_000 && task == 0 { warmedUp.open() }
                        if i % 64 == 0 { await Task.yield() }  // 2 cores: let the suspend run
                    }
                }
            }
            group.addTask {
                await warmedUp.wait()  // suspend while the hammer is in full swing
                let result = try await controller.suspend(.gateway, timeout: .forever)
                #expect(result.drained && result.active == 0 && result.state == .suspended)
                drainReported.set()
            }
            try await group.waitForAll()
        }
        #expect(attemptsAfter.current == 4 * 20_000)
        #expect(admittedAfter.current == 0)
        let snapshot = controller.snapshot()
        #expect(snapshot.active == 0)
        #expect(snapshot.rejected[.suspended]! >= 4 * 20_000)
        #expect(snapshot.total >= 50_000)  // the hammer really ran before the drain
    }

    @Test func nestedScopesAreIndependent() async throws {
        let controller = RequestController(configuration: makeConfiguration())
        let shop = controller.point("shop", "http")
        _ = try await controller.suspend(.gateway, timeout: .noWait)
        _ = try await controller.suspend(.deployment("shop"), timeout: .noWait)
        #expect(try await controller.resume(.deployment("shop")) == .running)
        #expect(shop.rejection() == .suspended)  // the gateway bit still refuses
        #expect(shop.isDraining)
        #expect(try await controller.resume(.gateway) == .running)
        #expect(shop.rejection() == nil)
        #expect(!shop.isDraining)

        // An entry point alone: its sibling keeps running.
        _ = try await controller.suspend(.entryPoint(deployment: "shop", entryPoint: "http"), timeout: .noWait)
        #expect(shop.isDraining)
        #expect(!controller.point("shop", "admin").isDraining)
        #expect(shop.rejection() == .suspended)
        #expect(controller.point("shop", "admin").rejection() == nil)
        #expect(try controller.state(of: .deployment("shop")) == .running)
        #expect(try await controller.resume(.gateway) == .running)  // resuming a running scope is a no-op
    }

    @Test func secondSuspendWaitsForTheSameDrain() async throws {
        let controller = RequestController(configuration: makeConfiguration())
        let events = StateEvents(controller)
        let shared = RecordingActivity.SharedLog()
        controller.register(RecordingActivity("lb", shared: shared), group: 0)
        let token = controller.point("blog", "http").admit()
        let first = Task { try await controller.suspend(.deployment("blog"), timeout: .forever) }
        await events.wait(for: .deployment("blog"), .suspending)
        let second = Task { try await controller.suspend(.deployment("blog"), timeout: .forever) }
        let third = try await controller.suspend(.deployment("blog"), timeout: .after(.milliseconds(50)))
        #expect(third == SuspendResult(drained: false, active: 1, state: .suspending, cancelled: false))
        token?.complete(status: 200)
        let results = try await [first.value, second.value]
        #expect(results.allSatisfy { $0.drained && !$0.cancelled && $0.active == 0 })
        #expect(try controller.state(of: .deployment("blog")) == .suspended)
        #expect(shared.all == ["pre lb", "suspended lb"])  // activities ran once
        #expect(events.all.map(\.state) == [.preSuspend, .suspending, .suspended])
    }

    @Test func cancellingTheCallerEndsTheWaitLikeATimeout() async throws {
        let controller = RequestController(configuration: makeConfiguration())
        let events = StateEvents(controller)
        let token = controller.point("shop", "http").admit()
        let suspend = Task { try await controller.suspend(.gateway, timeout: .forever) }
        await events.wait(for: .gateway, .suspending)
        suspend.cancel()
        let result = try await suspend.value
        #expect(result == SuspendResult(drained: false, active: 1, state: .suspended, cancelled: false))
        token?.complete(status: 200)
    }
}

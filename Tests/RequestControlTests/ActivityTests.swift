import Testing

@testable import RequestControl

@Suite("Suspendable activities", .timeLimit(.minutes(1)))
struct ActivityTests {
    @Test func groupsRunInOrder() async throws {
        // No pre-suspend bound: on a loaded machine the phase could otherwise time out and the
        // later groups would see SUSPENDING; this test is about the order only.
        let controller = RequestController(configuration: makeConfiguration(), preSuspendTimeout: .seconds(3600))
        let shared = RecordingActivity.SharedLog()
        let state: @Sendable () -> String = { " " + (try! controller.state(of: .gateway)).rawValue }
        // Registered out of order on purpose.
        controller.register(RecordingActivity("g2", shared: shared, stateSeen: state), group: 2)
        controller.register(RecordingActivity("g0", shared: shared, stateSeen: state), group: 0)
        controller.register(RecordingActivity("g1", shared: shared, stateSeen: state), group: 1)
        _ = try await controller.suspend(.gateway, timeout: .noWait)
        try await controller.resume(.gateway)
        #expect(shared.all == [
            "pre g0 PRE_SUSPEND", "pre g1 PRE_SUSPEND", "pre g2 PRE_SUSPEND",
            "suspended g0 SUSPENDING", "suspended g1 SUSPENDING", "suspended g2 SUSPENDING",
            "resume g2 RUNNING", "resume g1 RUNNING", "resume g0 RUNNING",
        ])
    }

    @Test func activitiesOfOneGroupRunConcurrently() async throws {
        // a waits for b's preSuspend: only finishes if both run at the same time.
        let controller = RequestController(configuration: makeConfiguration(), preSuspendTimeout: .seconds(3600))
        let shared = RecordingActivity.SharedLog()
        let gate = Gate()
        final class Opener: SuspendableActivity {
            let gate: Gate
            init(_ gate: Gate) { self.gate = gate }
            func preSuspend(_ scope: SuspendScope) async { gate.open() }
            func suspended(_ scope: SuspendScope) async {}
            func resume(_ scope: SuspendScope) async {}
        }
        controller.register(RecordingActivity("a", shared: shared, hang: gate), group: 5)
        controller.register(Opener(gate), group: 5)
        let result = try await controller.suspend(.deployment("shop"), timeout: .noWait)
        #expect(result.state == .suspended)
        #expect(shared.all == ["pre a", "suspended a"])
    }

    @Test func hangingPreSuspendIsBoundedByItsTimeout() async throws {
        let controller = RequestController(configuration: makeConfiguration(), preSuspendTimeout: .milliseconds(100))
        let shared = RecordingActivity.SharedLog()
        let hang = Gate()
        controller.register(RecordingActivity("stuck", shared: shared, hang: hang), group: 0)
        controller.register(RecordingActivity("later", shared: shared), group: 1)
        let clock = ContinuousClock()
        let start = clock.now
        let result = try await controller.suspend(.gateway, timeout: .forever)
        #expect(clock.now - start >= .milliseconds(100))
        #expect(result == SuspendResult(drained: true, active: 0, state: .suspended, cancelled: false))
        // The next group never got its preSuspend (the phase timed out as a whole), but every
        // group is told it is suspended.
        #expect(shared.all == ["pre stuck", "suspended stuck", "suspended later"])
        hang.open()
    }

    @Test func resumeOfARunningScopeCallsNoActivity() async throws {
        let controller = RequestController(configuration: makeConfiguration())
        let shared = RecordingActivity.SharedLog()
        controller.register(RecordingActivity("x", shared: shared), group: 0)
        #expect(try await controller.resume(.deployment("shop")) == .running)
        #expect(shared.all.isEmpty)
    }
}

import Testing

@testable import RequestControl

@Suite("Backend counters", .timeLimit(.minutes(1)))
struct BackendCounterTests {
    let scope = SuspendScope.backend(deployment: "shop", address: "127.0.0.1:9001")

    @Test func acquireAndReleaseCount() {
        let controller = RequestController(configuration: makeConfiguration())
        let backend = controller.backend(deployment: "shop", address: "127.0.0.1:9001")!
        #expect(backend.inRotation)
        #expect(backend.acquire() && backend.acquire() && backend.acquire())
        #expect(backend.active == 3)
        backend.release(failed: false)
        backend.release(failed: true)
        let snapshot = controller.snapshot().deployments[0].backends
        #expect(snapshot[0] == BackendSnapshot(address: "127.0.0.1:9001", state: .running, inRotation: true, active: 1, total: 3, failures: 1))
        #expect(snapshot[1] == BackendSnapshot(address: "127.0.0.1:9002", state: .running, inRotation: true, active: 0, total: 0, failures: 0))
        backend.release(failed: false)
    }

    @Test func suspendTakesItOutOfRotationAndDrains() async throws {
        let controller = RequestController(configuration: makeConfiguration())
        let events = StateEvents(controller)
        let backend = controller.backend(deployment: "shop", address: "127.0.0.1:9001")!
        let other = controller.backend(deployment: "shop", address: "127.0.0.1:9002")!
        final class RotationProbe: SuspendableActivity {
            let backend: BackendCounter
            let seen = RecordingActivity.SharedLog()
            init(_ backend: BackendCounter) { self.backend = backend }
            func preSuspend(_ scope: SuspendScope) async { seen.append("pre inRotation=\(backend.inRotation) acquire=\(backend.acquire())") }
            func suspended(_ scope: SuspendScope) async {}
            func resume(_ scope: SuspendScope) async { seen.append("resume inRotation=\(backend.inRotation)") }
        }
        let probe = RotationProbe(backend)
        controller.register(probe, group: 0)
        #expect(backend.acquire())
        let suspend = Task { try await controller.suspend(scope, timeout: .forever) }
        await events.wait(for: scope, .suspending)
        #expect(!backend.acquire())  // paused
        #expect(other.acquire())  // another backend is unaffected
        other.release(failed: false)
        #expect(controller.point("shop", "http").rejection() == nil)  // requests still admitted
        backend.release(failed: false)  // the one in flight before the suspend
        backend.release(failed: false)  // the one the probe acquired during PRE_SUSPEND
        let result = try await suspend.value
        #expect(result == SuspendResult(drained: true, active: 0, state: .suspended, cancelled: false))
        #expect(controller.snapshot().deployments[0].backends[0].state == .suspended)
        try await controller.resume(scope)
        #expect(backend.inRotation)
        #expect(backend.acquire())
        backend.release(failed: false)
        // Out of rotation already in PRE_SUSPEND, still acquirable then; back in on resume.
        #expect(probe.seen.all == ["pre inRotation=false acquire=true", "resume inRotation=true"])
    }

    @Test func deploymentSuspendLeavesBackendsInRotation() async throws {
        let controller = RequestController(configuration: makeConfiguration())
        _ = try await controller.suspend(.deployment("shop"), timeout: .noWait)
        let backend = controller.backend(deployment: "shop", address: "127.0.0.1:9001")!
        #expect(backend.inRotation)
        #expect(backend.acquire())
        backend.release(failed: false)
    }
}

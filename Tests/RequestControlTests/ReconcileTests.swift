import Synchronization
import Testing

@testable import RequestControl

@Suite("Reconcile (dynamic membership)", .timeLimit(.minutes(1)))
struct ReconcileTests {
    let b1 = "127.0.0.1:9001"
    let b2 = "127.0.0.1:9002"
    let b3 = "127.0.0.1:9003"

    /// makeConfiguration()'s shop and blog, in another order, with shop's entry points and
    /// backends reordered, b1 replaced by b3, and a new deployment "wiki".
    func reshuffled(globalLimit: Int? = nil, shopLimit: Int? = nil, httpLimit: Int? = nil) -> RequestControlConfiguration {
        RequestControlConfiguration(
            globalLimit: globalLimit,
            deployments: [
                .init(name: "wiki", limit: nil, entryPoints: [.init(name: "http", limit: nil)], backends: ["127.0.0.1:9100"]),
                .init(name: "blog", limit: nil, entryPoints: [.init(name: "http", limit: nil)], backends: []),
                .init(
                    name: "shop", limit: shopLimit,
                    entryPoints: [.init(name: "admin", limit: nil), .init(name: "http", limit: httpLimit)],
                    backends: [b3, b2]),
            ])
    }

    func deployment(_ name: String, in snapshot: RequestControlSnapshot) -> DeploymentSnapshot? {
        snapshot.deployments.first { $0.name == name }
    }

    @Test func keptScopesKeepTheirObjectsCountsAndStatistics() throws {
        let controller = RequestController(configuration: makeConfiguration())
        let http = controller.point("shop", "http")
        let blog = controller.point("blog", "http")
        let backend = try #require(controller.backend(deployment: "shop", address: b2))
        let held = http.admit()
        http.admit()?.complete(status: 404)
        http.admit()?.complete(status: 200)
        #expect(blog.rejection() == nil)
        #expect(backend.acquire() && backend.acquire())
        backend.release(failed: true)

        controller.reconcile(reshuffled())

        #expect(controller.point("shop", "http") === http)
        #expect(controller.point("blog", "http") === blog)
        #expect(controller.backend(deployment: "shop", address: b2) === backend)
        let snapshot = controller.snapshot()
        #expect(snapshot.deployments.map(\.name) == ["wiki", "blog", "shop"])
        let shop = try #require(deployment("shop", in: snapshot))
        #expect(shop.entryPoints.map(\.name) == ["admin", "http"])
        #expect(shop.backends.map(\.address) == [b3, b2])
        #expect(shop.active == 1 && shop.total == 3)
        let entry = shop.entryPoints[1]
        #expect(entry.active == 1 && entry.total == 3)
        #expect(entry.status.success == 1 && entry.status.clientError == 1)
        #expect(entry.latency.count == 2)
        #expect(shop.backends[1] == BackendSnapshot(
            address: b2, state: .running, inRotation: true, active: 1, total: 2, failures: 1))
        #expect(snapshot.active == 1 && snapshot.total == 4)

        // The token admitted before the reconcile completes on the same, still live, counters.
        held?.complete(status: 200)
        backend.release(failed: false)
        let after = controller.snapshot()
        #expect(after.active == 0)
        #expect(deployment("shop", in: after)?.entryPoints[1].status.success == 2)
        #expect(deployment("shop", in: after)?.backends[1].active == 0)
    }

    @Test func addedScopesStartRunningAndCount() throws {
        let controller = RequestController(configuration: makeConfiguration())
        controller.reconcile(reshuffled())
        let backend = try #require(controller.backend(deployment: "shop", address: b3))
        #expect(try controller.state(of: .backend(deployment: "shop", address: b3)) == .running)
        #expect(try controller.state(of: .deployment("wiki")) == .running)
        #expect(backend.inRotation)
        #expect(backend.acquire())
        let wiki = controller.point("wiki", "http")
        let token = wiki.admit()
        let snapshot = controller.snapshot()
        #expect(deployment("shop", in: snapshot)?.backends.first == BackendSnapshot(
            address: b3, state: .running, inRotation: true, active: 1, total: 1, failures: 0))
        #expect(deployment("wiki", in: snapshot)?.entryPoints.first?.active == 1)
        #expect(snapshot.active == 1)
        token?.complete(status: 200)
        backend.release(failed: false)
        #expect(controller.snapshot().active == 0)
    }

    @Test func removedBackendIsGoneButAnOutstandingAcquireReleases() async throws {
        let controller = RequestController(configuration: makeConfiguration())
        let scope = SuspendScope.backend(deployment: "shop", address: b1)
        let removed = try #require(controller.backend(deployment: "shop", address: b1))
        #expect(removed.acquire())

        controller.reconcile(reshuffled())

        #expect(controller.backend(deployment: "shop", address: b1) == nil)
        #expect(throws: RequestControlError.unknownScope(scope)) { try controller.state(of: scope) }
        #expect(deployment("shop", in: controller.snapshot())?.backends.map(\.address) == [b3, b2])
        removed.release(failed: false)
        #expect(removed.active == 0)

        // Named again, it is a new backend with fresh counters.
        controller.reconcile(makeConfiguration())
        let back = try #require(controller.backend(deployment: "shop", address: b1))
        #expect(back !== removed)
        #expect(deployment("shop", in: controller.snapshot())?.backends.first?.total == 0)
    }

    @Test func removedEntryPointKeepsTheGatewayTotalsMonotonic() throws {
        let controller = RequestController(configuration: makeConfiguration(httpLimit: 0))
        let http = controller.point("shop", "http")
        #expect(http.rejection() == .entryPointLimit)
        controller.point("shop", "admin").admit()?.complete(status: 200)
        let held = controller.point("shop", "admin").admit()
        let before = controller.snapshot()
        #expect(before.total == 2 && before.rejected[.entryPointLimit] == 1)

        var smaller = makeConfiguration(httpLimit: 0)
        smaller.deployments[0].entryPoints.removeLast()  // shop's "admin"
        controller.reconcile(smaller)
        #expect(controller.controlPoint(deployment: "shop", entryPoint: "admin") == nil)
        let after = controller.snapshot()
        #expect(after.deployments[0].entryPoints.map(\.name) == ["http"])
        #expect(after.total == 2 && after.rejected[.entryPointLimit] == 1)
        #expect(after.active == 1)  // the admin request still holds its gateway slot
        held?.complete(status: 200)
        #expect(controller.snapshot().active == 0)
    }

    @Test func entryPointLimitChangesInPlace() throws {
        let controller = RequestController(configuration: makeConfiguration(httpLimit: 3))
        let http = controller.point("shop", "http")
        var tokens = http.hold(3)
        #expect(http.rejection() == .entryPointLimit)

        // Lowered below the count: nothing is cut, nothing is admitted until the count is under it.
        controller.reconcile(makeConfiguration(httpLimit: 1))
        #expect(controller.snapshot().deployments[0].entryPoints[0].limit == 1)
        #expect(http.active == 3)
        tokens.removeLast().complete(status: 200)
        #expect(http.rejection() == .entryPointLimit)  // 2 in flight
        tokens.removeLast().complete(status: 200)
        #expect(http.rejection() == .entryPointLimit)  // 1 in flight, limit 1
        tokens.removeLast().complete(status: 200)
        #expect(http.rejection() == nil)

        // Raised: more are admitted, up to the new limit exactly.
        controller.reconcile(makeConfiguration(httpLimit: 5))
        tokens = http.hold(5)
        #expect(http.rejection() == .entryPointLimit)
        controller.reconcile(makeConfiguration(httpLimit: nil))
        #expect(http.rejection() == nil)
        #expect(controller.snapshot().deployments[0].entryPoints[0].limit == nil)
        for token in tokens { token.complete() }
        #expect(controller.point("shop", "http") === http)
    }

    @Test func deploymentLimitChangesInPlace() throws {
        let controller = RequestController(configuration: makeConfiguration(shopLimit: 2))
        let http = controller.point("shop", "http"), admin = controller.point("shop", "admin")
        var tokens = http.hold(1) + admin.hold(1)
        #expect(admin.rejection() == .deploymentLimit)
        controller.reconcile(makeConfiguration(shopLimit: 3))
        #expect(controller.snapshot().deployments[0].limit == 3)
        tokens += admin.hold(1)
        #expect(http.rejection() == .deploymentLimit)
        controller.reconcile(makeConfiguration(shopLimit: 1))
        tokens.removeLast().complete(status: 200)
        tokens.removeLast().complete(status: 200)
        #expect(http.rejection() == .deploymentLimit)  // 1 in flight, limit 1
        tokens.removeLast().complete(status: 200)
        #expect(http.rejection() == nil)
        #expect(controller.point("blog", "http").rejection() == nil)  // another deployment's limit
    }

    @Test func globalLimitChangesInPlace() throws {
        let controller = RequestController(configuration: makeConfiguration(globalLimit: 1))
        let held = controller.point("shop", "http").admit()
        let blog = controller.point("blog", "http")
        #expect(blog.rejection() == .globalLimit)
        controller.reconcile(makeConfiguration(globalLimit: 2))
        #expect(controller.snapshot().limit == 2)
        let second = blog.admit()
        #expect(blog.rejection() == .globalLimit)
        controller.reconcile(makeConfiguration(globalLimit: nil))
        #expect(controller.snapshot().limit == nil)
        #expect(blog.rejection() == nil)
        controller.reconcile(makeConfiguration(globalLimit: 0))
        #expect(controller.point("shop", "admin").rejection() == .globalLimit)
        held?.complete(status: 200)
        second?.complete(status: 200)
        #expect(controller.snapshot().active == 0)
    }

    @Test func suspendStateOfKeptScopesSurvives() async throws {
        let controller = RequestController(configuration: makeConfiguration())
        let backendScope = SuspendScope.backend(deployment: "shop", address: b2)
        _ = try await controller.suspend(.deployment("shop"), timeout: .noWait)
        _ = try await controller.suspend(backendScope, timeout: .noWait)

        controller.reconcile(reshuffled())

        #expect(try controller.state(of: .deployment("shop")) == .suspended)
        #expect(try controller.state(of: backendScope) == .suspended)
        #expect(controller.point("shop", "http").rejection() == .suspended)
        let backend = try #require(controller.backend(deployment: "shop", address: b2))
        #expect(!backend.inRotation && !backend.acquire())
        #expect(deployment("shop", in: controller.snapshot())?.state == .suspended)
        #expect(controller.point("wiki", "http").rejection() == nil)

        #expect(try await controller.resume(.deployment("shop")) == .running)
        #expect(try await controller.resume(backendScope) == .running)
        #expect(controller.point("shop", "http").rejection() == nil)
        #expect(backend.acquire())
        backend.release(failed: false)
    }

    @Test func removedScopesAreUnknownAndComeBackRunning() async throws {
        let controller = RequestController(configuration: makeConfiguration())
        let oldBlog = controller.point("blog", "http")
        _ = try await controller.suspend(.deployment("blog"), timeout: .noWait)
        var withoutBlog = makeConfiguration()
        withoutBlog.deployments.removeLast()
        controller.reconcile(withoutBlog)

        let removed: [SuspendScope] = [.deployment("blog"), .entryPoint(deployment: "blog", entryPoint: "http")]
        for scope in removed {
            await #expect(throws: RequestControlError.unknownScope(scope)) {
                try await controller.suspend(scope, timeout: .noWait)
            }
            await #expect(throws: RequestControlError.unknownScope(scope)) {
                try await controller.resume(scope)
            }
            #expect(throws: RequestControlError.unknownScope(scope)) { try controller.state(of: scope) }
        }
        #expect(controller.controlPoint(deployment: "blog", entryPoint: "http") == nil)
        #expect(controller.snapshot().deployments.map(\.name) == ["shop"])

        controller.reconcile(makeConfiguration())
        #expect(try controller.state(of: .deployment("blog")) == .running)
        let newBlog = controller.point("blog", "http")
        #expect(newBlog !== oldBlog)
        #expect(newBlog.rejection() == nil)
        #expect(oldBlog.rejection() == .suspended)  // the old object keeps its own (old) state
    }

    @Test func deploymentAddedUnderASuspendedGatewayIsRunningButRefused() async throws {
        let controller = RequestController(configuration: makeConfiguration())
        _ = try await controller.suspend(.gateway, timeout: .noWait)
        controller.reconcile(reshuffled())
        #expect(try controller.state(of: .deployment("wiki")) == .running)
        let wiki = controller.point("wiki", "http")
        #expect(wiki.rejection() == .suspended)
        #expect(wiki.isDraining)
        try await controller.resume(.gateway)
        #expect(wiki.rejection() == nil)
    }

    /// A rolling restart drains the old backend and removes it; if the removal comes before the
    /// drain ends, the suspend still reports the drain when the last request is released.
    @Test func suspendWaitingOnARemovedBackendCompletes() async throws {
        let controller = RequestController(configuration: makeConfiguration())
        let events = StateEvents(controller)
        let scope = SuspendScope.backend(deployment: "shop", address: b1)
        let backend = try #require(controller.backend(deployment: "shop", address: b1))
        #expect(backend.acquire())
        let suspend = Task { try await controller.suspend(scope, timeout: .forever) }
        await events.wait(for: scope, .suspending)

        controller.reconcile(reshuffled())
        #expect(throws: RequestControlError.unknownScope(scope)) { try controller.state(of: scope) }

        backend.release(failed: false)
        let result = try await suspend.value
        #expect(result == SuspendResult(drained: true, active: 0, state: .suspended, cancelled: false))
    }

    /// Requests on every scope while another task reconciles between two configurations
    /// (members and limits changing) and a third takes snapshots: no crash, no lost count.
    @Test func concurrentRequestsAndReconciles() async throws {
        let configurations = [makeConfiguration(), reshuffled(globalLimit: 6, shopLimit: 4, httpLimit: 2)]
        let controller = RequestController(configuration: configurations[0])
        let workers = 4, iterations = 5_000, reconciles = 400
        let handedOut = ObjectSet<BackendCounter>()
        let points = ObjectSet<ControlPoint>()
        let admitted = SharedCount()
        let targets = [("shop", "http"), ("shop", "admin"), ("blog", "http"), ("wiki", "http")]
        let addresses = [b1, b2, b3]

        await withTaskGroup(of: Void.self) { group in
            for worker in 0..<workers {
                group.addTask {
                    // Looked up again now and then, as a gateway rebuilding its routes would;
                    // in between, a looked-up object may have been removed and must keep working.
                    var point: ControlPoint?
                    var backend: BackendCounter?
                    for i in 0..<iterations {
                        if i % 16 == 0 {
                            let (d, e) = targets[(worker + i / 16) % targets.count]
                            point = controller.controlPoint(deployment: d, entryPoint: e)
                            backend = controller.backend(deployment: "shop", address: addresses[(worker + i) % addresses.count])
                            if let point { points.insert(point) }
                            if let backend { handedOut.insert(backend) }
                        }
                        guard let point else { continue }
                        switch point.beginRequest() {
                        case .run(let token):
                            admitted.increment()
                            let forwarded = backend?.acquire() ?? false
                            if i % 8 == 0 { await Task.yield() }  // hold it across a reconcile now and then
                            if forwarded { backend?.release(failed: i % 5 == 0) }
                            token.complete(status: i % 3 == 0 ? 500 : 200)
                        case .rejected:
                            break
                        }
                    }
                }
            }
            group.addTask {
                for i in 0..<reconciles {
                    controller.reconcile(configurations[i % 2])
                    await Task.yield()
                }
            }
            group.addTask {
                for _ in 0..<reconciles {
                    let snapshot = controller.snapshot()
                    #expect(snapshot.active >= 0)
                    await Task.yield()
                }
            }
        }

        #expect(admitted.current > 0)
        for configuration in configurations {
            controller.reconcile(configuration)
            let snapshot = controller.snapshot()
            #expect(snapshot.active == 0)
            for deployment in snapshot.deployments {
                #expect(deployment.active == 0, "\(deployment.name)")
                #expect(deployment.entryPoints.allSatisfy { $0.active == 0 }, "\(deployment.name)")
                #expect(deployment.backends.allSatisfy { $0.active == 0 }, "\(deployment.name)")
            }
        }
        // Every object ever handed out, kept or removed since, is back at zero.
        for point in points.all {
            #expect(point.active == 0 && point.deploymentCounter.active == 0 && point.global.active == 0)
        }
        for backend in handedOut.all {
            #expect(backend.active == 0)
        }
    }
}

/// The distinct objects tasks have seen, by identity.
final class ObjectSet<Object: AnyObject & Sendable>: Sendable {
    private let objects = Mutex<[ObjectIdentifier: Object]>([:])
    func insert(_ object: Object) { objects.withLock { $0[ObjectIdentifier(object)] = object } }
    var all: [Object] { objects.withLock { Array($0.values) } }
}

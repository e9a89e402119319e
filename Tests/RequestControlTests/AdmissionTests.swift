import Synchronization
import Testing

@testable import RequestControl

@Suite("Admission and limits")
struct AdmissionTests {
    @Test func globalLimitAdmitsExactlyN() {
        let controller = RequestController(configuration: makeConfiguration(globalLimit: 3))
        let shop = controller.point("shop", "http")
        let blog = controller.point("blog", "http")
        let a = shop.admit(), b = blog.admit(), c = shop.admit()
        #expect(blog.rejection() == .globalLimit)
        #expect(shop.rejection() == .globalLimit)
        c?.complete(status: 200)
        let d = blog.admit()
        #expect(blog.rejection() == .globalLimit)
        a?.complete(status: 200); b?.complete(status: 200); d?.complete(status: 200)

        let snapshot = controller.snapshot()
        #expect(snapshot.active == 0)
        #expect(snapshot.total == 4)
        #expect(snapshot.rejected[.globalLimit] == 3)
        #expect(snapshot.deployments[0].entryPoints[0].rejected[.globalLimit] == 1)
        #expect(snapshot.deployments[1].entryPoints[0].rejected[.globalLimit] == 2)
        // Rolled back: no level keeps a slot of a rejected request.
        #expect(snapshot.deployments.allSatisfy { $0.active == 0 })
    }

    @Test func deploymentLimitAdmitsExactlyNAcrossEntryPoints() {
        let controller = RequestController(configuration: makeConfiguration(shopLimit: 2))
        let http = controller.point("shop", "http")
        let admin = controller.point("shop", "admin")
        let blog = controller.point("blog", "http")
        let a = http.admit(), b = admin.admit()
        #expect(http.rejection() == .deploymentLimit)
        #expect(admin.rejection() == .deploymentLimit)
        #expect(blog.rejection() == nil)  // other deployment unaffected
        let snapshot = controller.snapshot()
        #expect(snapshot.active == 2)  // global rolled back
        #expect(snapshot.deployments[0].active == 2)
        a?.complete(status: 200)
        #expect(admin.rejection() == nil)
        b?.complete(status: 200)
    }

    @Test func entryPointLimitAdmitsExactlyN() {
        let controller = RequestController(configuration: makeConfiguration(httpLimit: 1))
        let http = controller.point("shop", "http")
        let token = http.admit()
        #expect(http.rejection() == .entryPointLimit)
        #expect(controller.point("shop", "admin").rejection() == nil)
        let snapshot = controller.snapshot()
        #expect(snapshot.active == 1)
        #expect(snapshot.deployments[0].active == 1)
        #expect(snapshot.deployments[0].entryPoints[0].rejected == [.suspended: 0, .globalLimit: 0, .deploymentLimit: 0, .entryPointLimit: 1])
        token?.complete(status: 200)
        #expect(http.rejection() == nil)
    }

    @Test func zeroLimitRejectsEverything() {
        let controller = RequestController(configuration: makeConfiguration(httpLimit: 0))
        #expect(controller.point("shop", "http").rejection() == .entryPointLimit)
    }

    @Test func suspendedWinsOverLimits() async throws {
        let controller = RequestController(configuration: makeConfiguration(globalLimit: 1))
        let http = controller.point("shop", "http")
        let token = http.admit()
        _ = try await controller.suspend(.gateway, timeout: .noWait)
        #expect(http.rejection() == .suspended)
        token?.complete(status: 200)
    }

    @Test func statusClassesAndAborts() {
        let controller = RequestController(configuration: makeConfiguration())
        let http = controller.point("shop", "http")
        for status in [101, 200, 204, 301, 404, 400, 500, 503, 599] {
            http.admit()?.complete(status: status)
        }
        http.admit()?.complete(status: nil)
        do { _ = http.admit() }  // dropped without complete: counted as aborted
        let entry = controller.snapshot().deployments[0].entryPoints[0]
        #expect(entry.status == StatusClassCounts(
            informational: 1, success: 2, redirection: 1, clientError: 2, serverError: 3, aborted: 2))
        #expect(entry.active == 0)
        #expect(entry.total == 11)
        #expect(entry.latency.count == 11)
    }

    @Test func droppedTokenFreesEveryLevel() {
        let controller = RequestController(configuration: makeConfiguration(globalLimit: 1))
        let http = controller.point("shop", "http")
        if case .run = http.beginRequest() {}  // token destroyed right here
        let snapshot = controller.snapshot()
        #expect(snapshot.active == 0)
        #expect(snapshot.deployments[0].active == 0)
        #expect(snapshot.deployments[0].entryPoints[0].status.aborted == 1)
        #expect(http.rejection() == nil)
    }

    @Test func unknownNames() async {
        let controller = RequestController(configuration: makeConfiguration())
        #expect(controller.controlPoint(deployment: "shop", entryPoint: "nope") == nil)
        #expect(controller.controlPoint(deployment: "nope", entryPoint: "http") == nil)
        #expect(controller.backend(deployment: "blog", address: "127.0.0.1:9001") == nil)
        #expect(throws: RequestControlError.unknownScope(.deployment("nope"))) {
            try controller.state(of: .deployment("nope"))
        }
        await #expect(throws: RequestControlError.unknownScope(.entryPoint(deployment: "shop", entryPoint: "x"))) {
            try await controller.suspend(.entryPoint(deployment: "shop", entryPoint: "x"), timeout: .noWait)
        }
        await #expect(throws: RequestControlError.unknownScope(.backend(deployment: "shop", address: "h:1"))) {
            try await controller.resume(.backend(deployment: "shop", address: "h:1"))
        }
        #expect(RequestControlError.unknownScope(.deployment("shop")).description == "unknown deployment 'shop'")
    }

    @Test func timeoutFromSeconds() {
        #expect(SuspendTimeout(seconds: 0) == .noWait)
        #expect(SuspendTimeout(seconds: 1.5) == .after(.milliseconds(1500)))
        #expect(SuspendTimeout(seconds: -1) == .forever)
    }

    /// 8 tasks x 50k begin/complete on shared counters: every count is exact afterwards.
    @Test(.timeLimit(.minutes(1))) func concurrentCountsAreExact() async {
        let controller = RequestController(configuration: makeConfiguration())
        let points = [controller.point("shop", "http"), controller.point("shop", "admin"), controller.point("blog", "http")]
        let tasks = 8, iterations = 50_000
        await withTaskGroup(of: Void.self) { group in
            for task in 0..<tasks {
                let point = points[task % points.count]
                group.addTask {
                    for i in 0..<iterations {
                        guard case .run(let token) = point.beginRequest() else {
                            Issue.record("unexpected rejection")
                            return
                        }
                        token.complete(status: i % 2 == 0 ? 200 : 503)
                    }
                }
            }
        }
        let snapshot = controller.snapshot()
        #expect(snapshot.active == 0)
        #expect(snapshot.total == tasks * iterations)
        let perPoint = [3, 3, 2].map { $0 * iterations }  // tasks per point
        let entries = snapshot.deployments.flatMap(\.entryPoints)
        #expect(entries.map(\.total) == perPoint)
        #expect(entries.map(\.status.success) == perPoint.map { $0 / 2 })
        #expect(entries.map(\.status.serverError) == perPoint.map { $0 / 2 })
        #expect(entries.map(\.latency.count) == perPoint)
        #expect(snapshot.deployments.map(\.total) == [6 * iterations, 2 * iterations])
    }

    /// Under contention at a limit of 1: admitted + rejected == attempts, and the in-flight count
    /// a holder sees never exceeds the limit.
    @Test(.timeLimit(.minutes(1))) func concurrentLimitIsNeverExceeded() async {
        let limit = 1
        let controller = RequestController(configuration: makeConfiguration(httpLimit: limit))
        let http = controller.point("shop", "http")
        let tasks = 8, iterations = 20_000
        let admitted = SharedCount(), overLimit = SharedCount()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<tasks {
                group.addTask {
                    for _ in 0..<iterations {
                        switch http.beginRequest() {
                        case .run(let token):
                            admitted.increment()
                            for _ in 0..<10 where http.active > limit { overLimit.increment() }
                            token.complete(status: 200)
                        case .rejected(let reason):
                            #expect(reason == .entryPointLimit)
                        }
                    }
                }
            }
        }
        let entry = controller.snapshot().deployments[0].entryPoints[0]
        #expect(overLimit.current == 0)
        #expect(entry.total == admitted.current)
        #expect(entry.total + entry.rejected[.entryPointLimit]! == tasks * iterations)
        #expect(controller.snapshot().active == 0)
    }
}

import RequestControl
import Testing

@testable import Gateway

/// Routers per event loop: each loop's replica balances on its own, over the same counters, and
/// a deployment's retry budget stays one for all loops.
@Suite struct RouterTests {
    static func router() throws -> (Router, RequestController) {
        let config = try ConfigLoader.parse(
            yaml: """
                listen: 127.0.0.1:0
                deployments:
                  - name: shop
                    backends: [127.0.0.1:9001, 127.0.0.1:9002]
                """,
            source: "test.yaml"
        )
        let controller = RequestController(configuration: BackendMembership.requestControlConfiguration(config))
        return (Router(config: config, controller: controller), controller)
    }

    static func route(_ router: Router) throws -> Router.Route {
        var path = "/"
        return try #require(path.withUTF8 { router.route(host: nil, path: UnsafeRawBufferPointer($0), method: UnsafeRawBufferPointer($0)[...]) })
    }

    @Test func aReplicaHasItsOwnBalancerOverTheSameBackendsAndBudget() throws {
        let (shared, controller) = try Self.router()
        let first = shared.replicatedForLoop()
        let second = shared.replicatedForLoop()
        let one = try Self.route(first).deployment
        let other = try Self.route(second).deployment
        // Nothing the request path touches per request is shared between the two loops...
        #expect(one !== other)
        #expect(one.balancer !== other.balancer)
        // ...but the counters are RequestControl's, and the retry budget is the deployment's.
        #expect(one.balancer.backends.map(\.address) == other.balancer.backends.map(\.address))
        for (a, b) in zip(one.balancer.backends, other.balancer.backends) { #expect(a.counter === b.counter) }
        #expect(one.failover.budget === other.failover.budget)
        #expect(try Self.route(first).controlPoint === controller.controlPoint(deployment: "shop", entryPoint: "default"))

        // Each round-robin cursor moves on its own: with both backends idle, each loop's first
        // choice is the first backend, and the next one on the same loop the second.
        let (index, backend) = try #require(one.balancer.acquire())
        #expect(index == 0)
        backend.counter.release(failed: false)
        let (otherIndex, otherBackend) = try #require(other.balancer.acquire())
        #expect(otherIndex == 0)
        // A request in flight on one loop counts on the other: least in flight wins there.
        let (busyIndex, busyBackend) = try #require(one.balancer.acquire())
        #expect(busyIndex == 1)
        otherBackend.counter.release(failed: false)
        busyBackend.counter.release(failed: false)
        let (nextIndex, nextBackend) = try #require(one.balancer.acquire())
        #expect(nextIndex == 0)
        nextBackend.counter.release(failed: false)
    }
}

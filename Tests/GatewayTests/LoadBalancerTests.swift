import RequestControl
import Testing

@testable import Gateway

/// Weighted choice: registered backends may carry a weight; all others weigh 1.
@Suite struct LoadBalancerTests {
    static func balancer(weights: [Int]) -> (LoadBalancer, [HostPort]) {
        let addresses = weights.indices.map { HostPort(host: "127.0.0.1", port: 9001 + $0) }
        let controller = RequestController(configuration: RequestControlConfiguration(
            globalLimit: nil,
            deployments: [.init(name: "web", limit: nil, entryPoints: [.init(name: "default", limit: nil)], backends: addresses.map(\.description))]))
        let members = addresses.map { ($0, controller.backend(deployment: "web", address: $0.description)!) }
        var table: [HostPort: Int] = [:]
        for (address, weight) in zip(addresses, weights) { table[address] = weight }
        return (LoadBalancer(backends: members, weights: table), addresses)
    }

    @Test func anIdleDeploymentSpreadsRequestsInProportionToWeight() {
        let (balancer, addresses) = Self.balancer(weights: [3, 1])
        var counts: [HostPort: Int] = [:]
        for _ in 0..<400 {
            guard let (_, backend) = balancer.acquire() else { Issue.record("nothing chosen"); return }
            counts[backend.address, default: 0] += 1
            backend.counter.release(failed: false)
        }
        #expect(counts[addresses[0]] == 300 && counts[addresses[1]] == 100, "\(counts)")
    }

    @Test func underLoadTheFewestInFlightPerUnitOfWeightWins() {
        let (balancer, addresses) = Self.balancer(weights: [2, 1])
        var held: [LoadBalancer.Backend] = []
        for _ in 0..<30 {
            guard let (_, backend) = balancer.acquire() else { Issue.record("nothing chosen"); return }
            held.append(backend)
        }
        let first = held.filter { $0.address == addresses[0] }.count
        // Held requests end up 2:1 (within one of it).
        #expect(abs(first - 20) <= 1, "\(first) of 30 on the backend of weight 2")
        for backend in held { backend.counter.release(failed: false) }
    }

    @Test func equalWeightsAlternateAsBefore() {
        let (balancer, addresses) = Self.balancer(weights: [1, 1])
        var order: [HostPort] = []
        for _ in 0..<4 {
            let (_, backend) = balancer.acquire()!
            order.append(backend.address)
            backend.counter.release(failed: false)
        }
        #expect(order == [addresses[0], addresses[1], addresses[0], addresses[1]])
    }
}

import Testing
@testable import Supervisor

struct RespawnTrackerTests {
    let policy = RespawnPolicy(delays: [.seconds(1), .seconds(5), .seconds(10)], resetAfter: .seconds(60), maxRestarts: 4)

    @Test func delaysGrowAlongTheTableAndTheLastOneRepeats() {
        var tracker = RespawnTracker(policy: RespawnPolicy(delays: [.seconds(1), .seconds(5)], resetAfter: .seconds(60)))
        #expect(tracker.crashed(healthyFor: .zero) == .restart(after: .seconds(1), attempt: 1))
        #expect(tracker.crashed(healthyFor: .seconds(2)) == .restart(after: .seconds(5), attempt: 2))
        #expect(tracker.crashed(healthyFor: .zero) == .restart(after: .seconds(5), attempt: 3))
        #expect(tracker.crashed(healthyFor: .zero) == .restart(after: .seconds(5), attempt: 4))
    }

    @Test func aHealthyPeriodStartsTheTableOver() {
        var tracker = RespawnTracker(policy: policy)
        _ = tracker.crashed(healthyFor: .zero)
        _ = tracker.crashed(healthyFor: .zero)
        #expect(tracker.crashed(healthyFor: .seconds(59)) == .restart(after: .seconds(10), attempt: 3))
        #expect(tracker.crashed(healthyFor: .seconds(60)) == .restart(after: .seconds(1), attempt: 1))
    }

    @Test func maxRestartsInARowGivesUp() {
        var tracker = RespawnTracker(policy: policy)
        for attempt in 1...4 {
            guard case .restart(_, let n) = tracker.crashed(healthyFor: .zero) else {
                Issue.record("gave up too early at \(attempt)")
                return
            }
            #expect(n == attempt)
        }
        #expect(tracker.crashed(healthyFor: .zero) == .giveUp(restarts: 4))
        // An operator's start gives a fresh table.
        tracker.reset()
        #expect(tracker.crashed(healthyFor: .zero) == .restart(after: .seconds(1), attempt: 1))
    }

    @Test func withoutMaxRestartsItNeverGivesUp() {
        var tracker = RespawnTracker(policy: RespawnPolicy(delays: [.milliseconds(100)], resetAfter: .seconds(60)))
        for _ in 0..<1000 {
            guard case .restart(let delay, _) = tracker.crashed(healthyFor: .zero) else {
                Issue.record("gave up")
                return
            }
            #expect(delay == .milliseconds(100))
        }
    }

    @Test func specsThatDifferOnlyInInstancesScaleInsteadOfRolling() {
        let a = ProcessSpec(command: ["app"], instances: 2, ports: 9000...9010)
        var b = a
        b.instances = 5
        #expect(a.sameExceptInstances(b))
        b.environment = ["X": "1"]
        #expect(!a.sameExceptInstances(b))
    }
}

import Testing

@testable import Gateway

/// The admin listener's connection cap and its rate-limited refusal log, as a pure state machine.
@Suite struct AdminConnectionGateTests {
    let start = ContinuousClock.now

    @Test func acceptsUpToTheCapThenRefusesUntilOneCloses() {
        var gate = AdminConnectionGate(maxConnections: 2, logInterval: .seconds(10))
        #expect(gate.opened(now: start) == .accept)
        #expect(gate.opened(now: start) == .accept)
        #expect(gate.opened(now: start) == .refuse(log: 1))
        #expect(gate.open == 2)
        gate.closed()
        #expect(gate.opened(now: start) == .accept)
        #expect(gate.open == 2)
        #expect(gate.refused == 1)
    }

    @Test func aFloodOfRefusalsIsLoggedOncePerInterval() {
        var gate = AdminConnectionGate(maxConnections: 0, logInterval: .seconds(10))
        // The first refusal is logged at once; the next ones are counted, not logged.
        #expect(gate.opened(now: start) == .refuse(log: 1))
        for second in 1...9 {
            #expect(gate.opened(now: start + .seconds(second)) == .refuse(log: nil))
        }
        // The first refusal after the interval logs how many there were since the last line.
        #expect(gate.opened(now: start + .seconds(10)) == .refuse(log: 10))
        #expect(gate.opened(now: start + .seconds(11)) == .refuse(log: nil))
        #expect(gate.refused == 12)
        #expect(gate.open == 0)
    }
}

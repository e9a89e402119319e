import Testing

@testable import Gateway

@Suite struct RetryBudgetTests {
    @Test func aQuietDeploymentMayStillRetryUpToTheMinimum() {
        let budget = RetryBudget(percent: 20, minimum: 3)
        #expect((0..<5).map { _ in budget.tryAcquire(active: 1) } == [true, true, true, false, false])
        budget.release()
        #expect(budget.tryAcquire(active: 1))
        #expect(budget.retriesInFlight == 3)
    }

    @Test func aBusyDeploymentMayRetryTwentyPercentOfItsRequestsInFlight() {
        let budget = RetryBudget(percent: 20, minimum: 3)
        let granted = (0..<50).filter { _ in budget.tryAcquire(active: 100) }.count
        #expect(granted == 20)
        for _ in 0..<granted { budget.release() }
        #expect(budget.retriesInFlight == 0)
    }
}

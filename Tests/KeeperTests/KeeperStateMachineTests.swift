import Foundation
import Testing

@testable import Keeper

/// The keeper's rules for workers, driven event by event.
@Suite struct KeeperStateMachineTests {
    typealias Action = KeeperStateMachine.Action

    static func serving() -> KeeperStateMachine {
        var machine = KeeperStateMachine(readyTimeout: .seconds(10))
        _ = machine.start()
        _ = machine.workerReady(generation: 1)
        return machine
    }

    @Test func theFirstWorkerStartsAndServesWhenReady() {
        var machine = KeeperStateMachine(readyTimeout: .seconds(10))
        #expect(machine.start() == [.startWorker(generation: 1, binary: nil), .armReadyTimer(generation: 1, after: .seconds(10))])
        #expect(machine.serving == nil)
        #expect(machine.workerReady(generation: 1) == [.workerServing(generation: 1, replaced: nil), .letAccept(generation: 1)])
        #expect(machine.serving == 1)
    }

    /// An upgrade: the old worker is told to drain only once the new one is ready.
    @Test func anUpgradeDrainsTheOldWorkerOnlyAfterTheNewOneIsReady() {
        var machine = Self.serving()
        #expect(machine.upgradeRequested(binary: "/new/gateway")
            == [.startWorker(generation: 2, binary: "/new/gateway"), .armReadyTimer(generation: 2, after: .seconds(10))])
        #expect(machine.serving == 1, "the old worker serves while the new one starts")
        #expect(machine.upgradeRequested(binary: nil) == [.upgradeFailed(reason: "worker 2 is still starting")])
        #expect(machine.workerReady(generation: 2)
            == [.workerServing(generation: 2, replaced: 1), .drainWorker(generation: 1), .armAcceptTimer(old: 1, after: .seconds(2))])
        #expect(machine.serving == 2)
        // The relay: the new worker accepts only once the old one closed its listeners.
        #expect(machine.workerStoppedAccepting(generation: 2) == [])
        #expect(machine.workerStoppedAccepting(generation: 1) == [.letAccept(generation: 2)])
        #expect(machine.acceptHandoverTimedOut(old: 1) == [], "a late timer after the relay does nothing")
        #expect(machine.workerExited(generation: 1) == [])
        #expect(machine.draining.isEmpty)
    }

    @Test func aNewWorkerThatDiesOrHangsIsReportedAndTheOldOneKeepsServing() {
        var machine = Self.serving()
        _ = machine.upgradeRequested(binary: "/broken")
        #expect(machine.workerExited(generation: 2) == [.upgradeFailed(reason: "worker 2 exited before it was ready; worker 1 keeps serving")])
        #expect(machine.serving == 1)

        _ = machine.upgradeRequested(binary: "/hangs")
        #expect(machine.readyTimedOut(generation: 3) == [.killWorker(generation: 3)])
        #expect(machine.workerExited(generation: 3).first == .upgradeFailed(reason: "worker 3 exited before it was ready; worker 1 keeps serving"))
        // A late timer of a worker long gone does nothing.
        #expect(machine.readyTimedOut(generation: 2) == [])
    }

    /// A crashed worker is replaced after a backoff that grows while replacements crash too, and
    /// is reset once one gets ready.
    @Test func aCrashedWorkerIsReplacedAfterAGrowingBackoff() {
        var machine = Self.serving()
        #expect(machine.workerExited(generation: 1) == [.scheduleRestart(after: .milliseconds(100))])
        #expect(machine.serving == nil)
        #expect(machine.restartTimerFired() == [.startWorker(generation: 2, binary: nil), .armReadyTimer(generation: 2, after: .seconds(10))])
        #expect(machine.workerExited(generation: 2) == [.scheduleRestart(after: .milliseconds(500))])
        #expect(machine.restartTimerFired().first == .startWorker(generation: 3, binary: nil))
        #expect(machine.upgradeRequested(binary: nil) == [.upgradeFailed(reason: "worker 3 is still starting")])
        #expect(machine.workerReady(generation: 3) == [.workerServing(generation: 3, replaced: nil), .letAccept(generation: 3)])
        #expect(machine.crashesInARow == 0)
        #expect(machine.workerExited(generation: 3) == [.scheduleRestart(after: .milliseconds(100))])
    }

    /// A serving worker that dies during an upgrade: the new worker, once ready, replaces nobody.
    @Test func aCrashDuringAnUpgradeWaitsForTheNewWorker() {
        var machine = Self.serving()
        _ = machine.upgradeRequested(binary: nil)
        #expect(machine.workerExited(generation: 1) == [])
        #expect(machine.workerReady(generation: 2) == [.workerServing(generation: 2, replaced: nil), .letAccept(generation: 2)])
    }

    @Test func shutdownWaitsForEveryWorkerThenExits() {
        var machine = Self.serving()
        _ = machine.upgradeRequested(binary: nil)
        _ = machine.workerReady(generation: 2)  // 1 drains
        #expect(machine.shutdownRequested() == [.shutDownWorker(generation: 2)])
        #expect(machine.upgradeRequested(binary: nil) == [.upgradeFailed(reason: "the gateway is shutting down")])
        #expect(machine.workerExited(generation: 2) == [])
        #expect(machine.workerExited(generation: 1) == [.exitKeeper(failed: false)])
        #expect(machine.phase == .done)
    }

    /// With no worker serving (it just crashed), the keeper stops the instances itself, and
    /// a worker still starting is killed.
    @Test func shutdownWithoutAServingWorkerStopsTheInstancesItself() {
        var machine = Self.serving()
        _ = machine.workerExited(generation: 1)
        _ = machine.restartTimerFired()
        #expect(machine.shutdownRequested() == [.stopInstances, .killWorker(generation: 2)])
        #expect(machine.workerExited(generation: 2) == [.exitKeeper(failed: false)])
        #expect(machine.restartTimerFired() == [])
    }

    /// A first worker that cannot start (a bad certificate, a port it cannot use) is the
    /// gateway failing to start: no restart loop, the keeper exits with a failure.
    @Test func aFirstWorkerThatFailsEndsTheKeeper() {
        var machine = KeeperStateMachine(readyTimeout: .seconds(10))
        _ = machine.start()
        #expect(machine.workerExited(generation: 1) == [.stopInstances, .exitKeeper(failed: true)])
        #expect(machine.phase == .done)
        #expect(machine.restartTimerFired() == [])
    }

    /// `POST /shutdown` reaches the worker: it says so, stops the instances itself, and its
    /// exit ends the keeper instead of starting a replacement.
    @Test func aWorkerThatShutsTheGatewayDownIsNotReplaced() {
        var machine = Self.serving()
        _ = machine.upgradeRequested(binary: nil)
        #expect(machine.workerStopping(generation: 2) == [], "only the serving worker speaks for the gateway")
        #expect(machine.workerStopping(generation: 1) == [.killWorker(generation: 2)])
        #expect(machine.phase == .shuttingDown)
        #expect(machine.workerExited(generation: 2) == [])
        #expect(machine.workerExited(generation: 1) == [.exitKeeper(failed: false)])
    }

    /// A replaced worker that never says it stopped accepting is killed after the timeout; one
    /// that dies first counts as stopped. Either way the new worker then accepts.
    @Test func theAcceptRelayDoesNotWaitForAReplacedWorkerForever() {
        var hangs = Self.serving()
        _ = hangs.upgradeRequested(binary: nil)
        _ = hangs.workerReady(generation: 2)
        #expect(hangs.acceptHandoverTimedOut(old: 1) == [.killWorker(generation: 1), .letAccept(generation: 2)])

        var dies = Self.serving()
        _ = dies.upgradeRequested(binary: nil)
        _ = dies.workerReady(generation: 2)
        #expect(dies.workerExited(generation: 1) == [.letAccept(generation: 2)])
        #expect(dies.awaitingStop == nil)
    }

    /// The keeper re-executes itself only when no timer of its own is pending: no worker
    /// starting, no accept relay, no restart; and the machine survives the exec as JSON.
    @Test func theKeeperIsSettledOnlyBetweenHandoversAndSurvivesAsJSON() throws {
        var machine = KeeperStateMachine(readyTimeout: .seconds(10))
        _ = machine.start()
        #expect(!machine.isSettled)
        _ = machine.workerReady(generation: 1)
        #expect(machine.isSettled)
        _ = machine.upgradeRequested(binary: "/new")
        #expect(!machine.isSettled, "a worker is starting")
        _ = machine.workerReady(generation: 2)
        #expect(!machine.isSettled, "the accept relay is under way")
        _ = machine.workerStoppedAccepting(generation: 1)
        #expect(machine.isSettled, "worker 1 drains, which an exec carries over")

        let copy = try JSONDecoder().decode(KeeperStateMachine.self, from: JSONEncoder().encode(machine))
        #expect(copy == machine)
        #expect(copy.draining == [1])

        _ = machine.workerExited(generation: 2)
        #expect(!machine.isSettled, "a restart is pending")
    }
}

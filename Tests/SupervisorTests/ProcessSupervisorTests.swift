import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging
import Synchronization
import Testing
@testable import Supervisor

/// The supervisor's state machine with real `sh` children and a delegate that records what the
/// supervisor asked of it, in order, together with what the children printed.
@Suite(.serialized) struct ProcessSupervisorTests {
    final class Recorder: SupervisorDelegate {
        let events = Mutex<[String]>([])
        let drainTime: Duration

        init(drainTime: Duration = .zero) {
            self.drainTime = drainTime
        }

        func record(_ event: String) { events.withLock { $0.append(event) } }
        var log: [String] { events.withLock { $0 } }

        func instanceReady(_ instance: InstanceEndpoint) async { record("ready \(instance.name)") }
        func instanceGone(_ instance: InstanceEndpoint) async { record("gone \(instance.name)") }
        func drain(_ instance: InstanceEndpoint, timeout: Duration) async -> DrainReport {
            record("drain-start \(instance.name)")
            try? await Task.sleep(for: drainTime)
            record("drain-end \(instance.name)")
            return DrainReport(drained: true, active: 0, duration: drainTime)
        }
        func probe(_ instance: InstanceEndpoint, check: HealthCheckSpec) async -> HealthProbeResult { .passed }

        func waitFor(_ event: String, timeout: Duration = .seconds(10)) async throws {
            let deadline = ContinuousClock.now + timeout
            while !log.contains(event) {
                guard ContinuousClock.now < deadline else { throw SupervisorTestError("no '\(event)' in \(log)") }
                try await Task.sleep(for: .milliseconds(10))
            }
        }
    }

    struct SupervisorTestError: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    static func supervisor(_ recorder: Recorder) -> ProcessSupervisor {
        let relay = OutputRelay(sink: { line, _ in recorder.record("out \(line)") })
        return ProcessSupervisor(
            spawner: ProcessSpawner(relay: relay), delegate: recorder, logger: Logger(label: "test"),
            environment: ProcessInfo.processInfo.environment)
    }

    static let termScript = "trap 'echo got-term; exit 0' TERM; echo up; while :; do sleep 0.05; done"

    @Test func aPlannedStopDrainsFirstThenSignalsAndReportsGoneAfterTheExit() async throws {
        let recorder = Recorder(drainTime: .milliseconds(200))
        let supervisor = Self.supervisor(recorder)
        let spec = ProcessSpec(
            command: ["sh", "-c", Self.termScript], ports: 31_000...31_100,
            health: HealthCheckSpec(kind: .tcp, interval: .milliseconds(50)))
        await supervisor.add(deployment: "app", spec: spec)
        try await recorder.waitFor("ready app#1")
        let rows = try await supervisor.stop(deployment: "app", index: 1)
        #expect(rows.first?.state == .stopped)
        let log = recorder.log.filter { !$0.hasPrefix("out [app#1] up") }
        let order = ["ready app#1", "drain-start app#1", "drain-end app#1", "out [app#1] got-term", "gone app#1"]
        let positions = order.map { log.firstIndex(of: $0) ?? -1 }
        #expect(!positions.contains(-1), "\(log)")
        #expect(positions == positions.sorted(), "\(log)")
    }

    @Test func aProcessThatExitsIsRespawnedAndThePortIsGivenAsPORT() async throws {
        let recorder = Recorder()
        let supervisor = Self.supervisor(recorder)
        let spec = ProcessSpec(
            command: ["sh", "-c", "echo port=$PORT instance=$GATEWAY_INSTANCE; sleep 0.2; exit 7"], ports: 31_200...31_210,
            health: HealthCheckSpec(kind: .tcp, interval: .milliseconds(50)),
            respawn: RespawnPolicy(delays: [.milliseconds(100)], resetAfter: .seconds(60), maxRestarts: 2))
        await supervisor.add(deployment: "job", spec: spec)
        let deadline = ContinuousClock.now + .seconds(10)
        var state = await supervisor.status()[0]
        while state.state != .failed, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
            state = await supervisor.status()[0]
        }
        #expect(state.state == .failed)
        #expect(state.restarts == 2)
        #expect(state.crashes == 2, "exits nobody asked for are crashes")
        #expect(state.plannedRestarts == 0)
        #expect(state.lastExit?.hasPrefix("exited with exit status 7 after") == true)
        let starts = recorder.log.filter { $0.hasPrefix("out [job#1] port=") }
        #expect(starts.count == 3)
        #expect(starts.allSatisfy { $0.hasSuffix("instance=job#1") && $0.contains("port=312") })
        // Each run was ready (the probe passes at once) and so left the rotation when it ended.
        #expect(recorder.log.filter { $0 == "ready job#1" }.count == recorder.log.filter { $0 == "gone job#1" }.count)
        await supervisor.shutdown(drain: false)
    }

    static func waitForReady(_ supervisor: ProcessSupervisor, count: Int) async throws -> [InstanceStatus] {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            let rows = await supervisor.status()
            if rows.filter({ $0.state == .ready }).count == count { return rows }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw SupervisorTestError("not \(count) READY: \(await supervisor.status())")
    }

    @Test func scalingDownStopsTheInstancesItRemoves() async throws {
        let recorder = Recorder()
        let supervisor = Self.supervisor(recorder)
        var spec = ProcessSpec(
            command: ["sh", "-c", Self.termScript], instances: 3, ports: 31_300...31_400,
            health: HealthCheckSpec(kind: .tcp, interval: .milliseconds(50)))
        await supervisor.add(deployment: "app", spec: spec)
        let rows = try await Self.waitForReady(supervisor, count: 3)
        let pids = rows.compactMap(\.pid)
        spec.instances = 1
        let what = await supervisor.update(deployment: "app", spec: spec)
        #expect(what == "scaled from 3 to 1 instances")
        let after = await supervisor.status()
        #expect(after.map(\.name) == ["app#1"])
        #expect(recorder.log.contains("gone app#2") && recorder.log.contains("gone app#3"))
        for pid in pids.dropFirst() { #expect(kill(pid, 0) != 0) }
        await supervisor.shutdown(drain: false)
        #expect(kill(pids[0], 0) != 0)
    }

    @Test func aRollLeavesAnInstanceTheOperatorStoppedStopped() async throws {
        let recorder = Recorder()
        let supervisor = Self.supervisor(recorder)
        let spec = ProcessSpec(
            command: ["sh", "-c", Self.termScript], instances: 2, ports: 31_500...31_600,
            health: HealthCheckSpec(kind: .tcp, interval: .milliseconds(50)))
        await supervisor.add(deployment: "app", spec: spec)
        _ = try await Self.waitForReady(supervisor, count: 2)
        _ = try await supervisor.stop(deployment: "app", index: 2)
        let report = try await supervisor.restart(deployment: "app")
        #expect(report.ok)
        let rows = await supervisor.status()
        #expect(rows.first { $0.name == "app#1" }?.state == .ready)
        #expect(rows.first { $0.name == "app#2" }?.state == .stopped)
        #expect(rows.first { $0.name == "app#2" }?.pid == nil)
        await supervisor.shutdown(drain: false)
    }
}

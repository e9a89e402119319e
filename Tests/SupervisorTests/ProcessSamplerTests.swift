import Glibc
import Testing
@testable import Supervisor

@Suite struct ProcessSamplerTests {
    @Test func samplesALiveChildAndNothingOnceItIsReaped() async throws {
        // Burn a little CPU first so cpuSeconds has something to show, then idle.
        let lines = LineCollector()
        let process = try ProcessSpawner(relay: lines.relay()).spawn(
            shell("i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; echo busy; exec sleep 30")
        )
        defer { process.signalGroup(SIGKILL) }
        #expect(await eventually(within: .seconds(10)) { lines.texts(.stdout) == ["[t#1] busy"] })

        let sample = try #require(ProcessSampler.sample(pid: process.pid))
        #expect(sample.rssBytes > 0)
        #expect(sample.cpuSeconds >= 0)
        #expect((process.sample()?.rssBytes ?? 0) > 0)

        process.signalGroup(SIGKILL)
        #expect(await process.exitStatus(within: .seconds(10)) == .signaled(SIGKILL, coreDumped: false))
        #expect(ProcessSampler.sample(pid: process.pid) == nil)
        #expect(process.sample() == nil)
    }

    @Test func samplesTheTestProcessItself() {
        let sample = ProcessSampler.sample(pid: getpid())
        #expect((sample?.rssBytes ?? 0) > 1024 * 1024)
        #expect(ProcessSampler.sample(pid: -5) == nil)
    }

    /// A gunicorn-like master with workers: the tree's memory is the sum, larger than the
    /// leader's own, and the workers are found as its descendants.
    @Test func theTreeSumsTheLeaderAndItsDescendants() async throws {
        let lines = LineCollector()
        let process = try ProcessSpawner(relay: lines.relay()).spawn(
            shell("sleep 30 & sleep 30 & (sleep 30 & wait) & echo started; wait"))
        defer { process.signalGroup(SIGKILL) }
        #expect(await eventually(within: .seconds(10)) { lines.texts(.stdout) == ["[t#1] started"] })
        // Four descendants: two sleeps, a subshell and its sleep.
        var members: [Int32] = []
        #expect(await eventually(within: .seconds(10)) {
            members = ProcessSampler.processList().tree(of: process.pid)
            return members.count == 5
        })
        #expect(members.contains(process.pid))
        let own = try #require(ProcessSampler.sample(pid: process.pid))
        let tree = try #require(process.sampleTree(in: ProcessSampler.processList()))
        #expect(tree.rssBytes > own.rssBytes)
        var sum = 0
        for pid in members { sum += ProcessSampler.sample(pid: pid)?.rssBytes ?? 0 }
        #expect(abs(tree.rssBytes - sum) < sum / 4, "the sum of the members (give or take a page or two)")
        process.signalGroup(SIGKILL)
        _ = await process.exitStatus(within: .seconds(10))
        #expect(process.sampleTree(in: ProcessSampler.processList()) == nil)
    }

    @Test func cpuPercentIsPerCore() {
        let before = ProcessSample(rssBytes: 1, cpuSeconds: 1.0)
        let after = ProcessSample(rssBytes: 1, cpuSeconds: 2.5)
        #expect(after.cpuPercent(since: before, elapsed: .seconds(1)) == 150)
        #expect(after.cpuPercent(since: before, elapsed: .zero) == 0)
        #expect(before.cpuPercent(since: after, elapsed: .seconds(1)) == 0)
    }
}

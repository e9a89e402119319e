import Dispatch
import Glibc
import Testing
@testable import Supervisor

@Suite struct GroupWatchdogTests {
    @Test func parserKeepsRegisteredGroupsAndRefusesDangerousIDs() {
        var parser = GroupWatchdog.Parser()
        let input = "+100\n+200\n-100\n+0\n+1\n+-5\nnonsense\n+300"  // the last line is incomplete
        Array(input.utf8).withUnsafeBytes { parser.consume($0) }
        #expect(parser.groups == [200])
    }

    /// In-process: run the watchdog loop on a thread, register two of three process groups, close
    /// its input, and only the registered two die.
    @Test func killsTheRegisteredGroupsWhenItsInputCloses() async throws {
        let (readEnd, writeEnd) = try #require(GNULibC.closeOnExecPipe())
        let done = DispatchSemaphore(value: 0)
        let killed = LineCollector()  // reused as a Sendable box for the result
        DispatchQueue.global().async {
            let groups = GroupWatchdog.run(input: readEnd)
            close(readEnd)
            killed.append(groups.map(String.init).joined(separator: ","), .stdout)
            done.signal()
        }

        let spawner = ProcessSpawner(relay: LineCollector().relay())
        let sleep = SpawnRequest(name: "t#1", arguments: ["sleep", "30"], environment: testEnvironment)
        let first = try spawner.spawn(sleep)
        let second = try spawner.spawn(sleep)
        let spared = try spawner.spawn(sleep)
        defer {
            [first, second, spared].forEach { $0.signalGroup(SIGKILL) }
        }
        let message = "+\(first.pid)\n+\(second.pid)\n+\(spared.pid)\n-\(spared.pid)\n"
        _ = Array(message.utf8).withUnsafeBytes { write(writeEnd, $0.baseAddress, $0.count) }
        close(writeEnd)

        #expect(await first.exitStatus(within: .seconds(10)) == .signaled(SIGKILL, coreDumped: false))
        #expect(await second.exitStatus(within: .seconds(10)) == .signaled(SIGKILL, coreDumped: false))
        #expect(await spared.exitStatus(within: .milliseconds(300)) == nil)
        #expect(done.wait(timeout: .now() + 10) == .success)
        #expect(killed.texts(.stdout) == ["\([first.pid, second.pid].sorted().map(String.init).joined(separator: ","))"])
    }
}

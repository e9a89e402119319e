import Foundation
import Glibc
import Testing
@testable import Supervisor

/// Real processes through /bin/sh. Every wait is bounded; cleanup kills only what the test
/// spawned, by pid.
@Suite struct ProcessSpawnerTests {
    @Test func relaysBothStreamsWithThePrefixAndReportsTheExitCode() async throws {
        let lines = LineCollector()
        let spawner = ProcessSpawner(relay: lines.relay())
        let process = try spawner.spawn(shell("echo hi; echo err >&2; exit 3"))
        defer { process.signalGroup(SIGKILL) }

        let status = try #require(await process.exitStatus(within: .seconds(10)))
        #expect(status == .exited(3))
        #expect(status.description == "exit status 3")
        // exitStatus resolves after the relay drained both pipes, so the lines are there already.
        #expect(lines.texts(.stdout) == ["[t#1] hi"])
        #expect(lines.texts(.stderr) == ["[t#1] err"])
        #expect(process.hasExited)
        #expect(process.name == "t#1")
    }

    @Test func aKilledProcessReportsTheSignalToEveryWaiter() async throws {
        let spawner = ProcessSpawner(relay: LineCollector().relay())
        let process = try spawner.spawn(SpawnRequest(name: "t#1", arguments: ["sleep", "30"],
                                                     environment: testEnvironment))
        defer { process.signalGroup(SIGKILL) }
        #expect(await process.exitStatus(within: .milliseconds(100)) == nil)
        #expect(!process.hasExited)

        process.signalGroup(SIGKILL)
        async let first = process.exitStatus()
        async let second = process.exitStatus()
        let bounded = try #require(await process.exitStatus(within: .seconds(10)))
        let (a, b) = await (first, second)
        #expect(bounded == .signaled(9, coreDumped: false))
        #expect(a == bounded && b == bounded)
        #expect(bounded.description == "signal 9 (KILL)")
        process.signalGroup(SIGTERM)  // after the reap: a no-op, not an error
    }

    @Test func aPartialLastLineIsFlushedAtExit() async throws {
        let lines = LineCollector()
        let process = try ProcessSpawner(relay: lines.relay()).spawn(shell("printf 'no newline'"))
        defer { process.signalGroup(SIGKILL) }
        #expect(await process.exitStatus(within: .seconds(10)) == .exited(0))
        #expect(lines.texts(.stdout) == ["[t#1] no newline"])
    }

    @Test func aLongLineIsCutAtTheLimit() async throws {
        let lines = LineCollector()
        let spawner = ProcessSpawner(relay: lines.relay(maxLineBytes: 10))
        let process = try spawner.spawn(shell("printf '%s\\n' 0123456789abcdef next 0123456789"))
        defer { process.signalGroup(SIGKILL) }
        #expect(await process.exitStatus(within: .seconds(10)) == .exited(0))
        #expect(lines.texts(.stdout) == ["[t#1] 0123456789 [line cut]", "[t#1] next", "[t#1] 0123456789"])
    }

    @Test func aGroupSignalReachesGrandchildren() async throws {
        let lines = LineCollector()
        let process = try ProcessSpawner(relay: lines.relay()).spawn(shell("sleep 30 & echo $!; wait"))
        var grandchild: Int32?
        defer {
            process.signalGroup(SIGKILL)
            killIfAlive(grandchild)
        }
        grandchild = await lines.pid(after: "[t#1] ")
        let sleeper = try #require(grandchild)
        #expect(!isGone(sleeper))

        process.signalGroup(SIGTERM)
        #expect(await process.exitStatus(within: .seconds(10)) == .signaled(SIGTERM, coreDumped: false))
        #expect(await eventually(within: .seconds(5)) { isGone(sleeper) })
    }

    @Test func stragglersAreKilledWhenTheLeaderExits() async throws {
        let lines = LineCollector()
        let process = try ProcessSpawner(relay: lines.relay()).spawn(shell("sleep 30 & echo $!; exit 0"))
        var grandchild: Int32?
        defer {
            process.signalGroup(SIGKILL)
            killIfAlive(grandchild)
        }
        // The sleep holds the output pipe too; the exit must not wait on it beyond the group kill.
        #expect(await process.exitStatus(within: .seconds(10)) == .exited(0))
        grandchild = await lines.pid(after: "[t#1] ")
        let sleeper = try #require(grandchild)
        #expect(await eventually(within: .seconds(5)) { isGone(sleeper) })
    }

    @Test(arguments: [[], ["/usr/bin/env", "--"]])
    func aMissingCommandIsASpawnErrorNamingIt(launcher: [String]) throws {
        let spawner = ProcessSpawner(launcher: launcher, relay: LineCollector().relay())
        let request = SpawnRequest(name: "shop#2", arguments: ["no-such-command-4711", "app.py"],
                                   environment: testEnvironment)
        let error = try #require(throws: SpawnError.self) { try spawner.spawn(request) }
        #expect(error.errno == ENOENT)
        #expect(error.description
            == "cannot start 'no-such-command-4711 app.py' for shop#2: No such file or directory")
    }

    @Test func aMissingWorkingDirectoryIsReportedAsSuch() throws {
        let spawner = ProcessSpawner(relay: LineCollector().relay())
        let error = try #require(throws: SpawnError.self) {
            try spawner.spawn(shell("true", in: "/no/such/directory"))
        }
        #expect(error.description
            == "cannot start '/bin/sh -c true' for t#1: working directory '/no/such/directory': No such file or directory")
    }

    @Test func environmentAndWorkingDirectoryReachTheChild() async throws {
        let directory = try makeTemporaryDirectory()
        defer { _ = rmdir(directory) }
        let lines = LineCollector()
        var environment = testEnvironment
        environment["GREETING"] = "hello world"
        let process = try ProcessSpawner(relay: lines.relay()).spawn(
            shell(#"echo "$GREETING"; pwd; echo "${HOME-unset}""#, in: directory, environment: environment)
        )
        defer { process.signalGroup(SIGKILL) }
        #expect(await process.exitStatus(within: .seconds(10)) == .exited(0))
        #expect(lines.texts(.stdout) == ["[t#1] hello world", "[t#1] \(directory)", "[t#1] unset"])
    }

    @Test func aRelativeCommandIsFoundInTheWorkingDirectory() async throws {
        let directory = try makeTemporaryDirectory()
        let script = directory + "/hello.sh"
        defer {
            _ = unlink(script)
            _ = rmdir(directory)
        }
        // The script is written by a child process, not by this one. A file this process had
        // open for writing could be inherited, for an instant, by a posix_spawn that a parallel
        // test runs, and exec of the script would then fail with ETXTBSY ("Text file busy").
        let writer = try ProcessSpawner(relay: LineCollector().relay()).spawn(
            shell(#"printf '#!/bin/sh\necho hello from the script\n' > hello.sh && chmod 755 hello.sh"#,
                  in: directory)
        )
        #expect(await writer.exitStatus(within: .seconds(10)) == .exited(0))
        let lines = LineCollector()
        let process = try ProcessSpawner(relay: lines.relay()).spawn(
            SpawnRequest(name: "t#1", arguments: ["./hello.sh"], workingDirectory: directory,
                         environment: testEnvironment)
        )
        defer { process.signalGroup(SIGKILL) }
        #expect(await process.exitStatus(within: .seconds(10)) == .exited(0))
        #expect(lines.texts(.stdout) == ["[t#1] hello from the script"])
    }

    @Test func theChildGetsDefaultSignalsAndItsOwnGroup() async throws {
        let lines = LineCollector()
        let process = try ProcessSpawner(relay: lines.relay()).spawn(
            shell("grep -E '^(SigBlk|SigIgn)' /proc/self/status; echo \"pgid $(cut -d' ' -f5 /proc/$$/stat)\"")
        )
        defer { process.signalGroup(SIGKILL) }
        #expect(await process.exitStatus(within: .seconds(10)) == .exited(0))
        let output = lines.texts(.stdout)
        #expect(output.contains("[t#1] SigBlk:\t0000000000000000"))
        // Signals 1...31 at their defaults. glibc's posix_spawn itself leaves its two internal
        // signals (32, 33: SIGCANCEL, SIGSETXID) ignored in the child, and refuses to let anyone
        // change them; glibc programs reinstall their handlers when they need them.
        let ignored = output.first { $0.hasPrefix("[t#1] SigIgn:\t") }
            .flatMap { UInt64($0.dropFirst("[t#1] SigIgn:\t".count), radix: 16) }
        #expect(ignored.map { $0 & 0x7fff_ffff } == 0)
        #expect(output.last == "[t#1] pgid \(process.pid)")
    }
}

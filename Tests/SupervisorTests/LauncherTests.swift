import Glibc
import Testing
@testable import Supervisor

/// The gateway's hidden `_launch` and `_watchdog` commands, run from the built binary.
@Suite struct LauncherTests {
    static func gateway() throws -> String {
        try #require(GatewayExecutable.path, "build the gateway first: swift build --build-tests")
    }

    @Test func theLauncherRunsTheCommandWithTheRequestedEnvironment() async throws {
        let lines = LineCollector()
        let spawner = ProcessSpawner(launcher: [try Self.gateway(), "_launch", "--"], relay: lines.relay())
        let process = try spawner.spawn(shell(#"echo "${GATEWAY_PARENT_PID-unset}"; exit 5"#))
        defer { process.signalGroup(SIGKILL) }
        #expect(await process.exitStatus(within: .seconds(20)) == .exited(5))
        #expect(lines.texts(.stdout) == ["[t#1] unset"])
    }

    @Test func theLauncherRefusesToStartWhenItsParentIsNotTheOneExpected() async throws {
        let lines = LineCollector()
        var environment = testEnvironment
        environment[ProcessSpawner.parentPIDVariable] = "1"
        let process = try ProcessSpawner(relay: lines.relay()).spawn(SpawnRequest(
            name: "t#1", arguments: [try Self.gateway(), "_launch", "--", "echo", "started"],
            environment: environment))
        defer { process.signalGroup(SIGKILL) }
        #expect(await process.exitStatus(within: .seconds(20)) == .exited(1))
        #expect(lines.lines.isEmpty)
    }

    @Test func theLauncherReportsAnExecFailureWith127() async throws {
        let lines = LineCollector()
        var environment = testEnvironment
        environment[ProcessSpawner.parentPIDVariable] = String(getpid())
        let process = try ProcessSpawner(relay: lines.relay()).spawn(SpawnRequest(
            name: "t#1", arguments: [try Self.gateway(), "_launch", "--", "/no/such/program", "x"],
            environment: environment))
        defer { process.signalGroup(SIGKILL) }
        #expect(await process.exitStatus(within: .seconds(20)) == .exited(127))
        #expect(lines.texts(.stderr)
            == ["[t#1] gateway: cannot run '/no/such/program': No such file or directory"])
    }

    /// PR_SET_PDEATHSIG end to end: a short-lived helper shell starts `gateway _launch -- sleep
    /// 30` and is then SIGKILLed; the sleep must die with it. The helper is spawned raw, without
    /// ProcessSpawner, because the spawner's own group kill would otherwise do the job and prove
    /// nothing.
    @Test func aLaunchedChildDiesWithItsParent() async throws {
        let (readEnd, writeEnd) = try #require(GNULibC.closeOnExecPipe())
        defer { close(readEnd) }
        let script = #"GATEWAY_PARENT_PID=$$ "$1" _launch -- sleep 30 & echo $!; wait"#
        let spawned = PosixSpawn.spawn(.init(
            executable: "/bin/sh", arguments: ["sh", "-c", script, "sh", try Self.gateway()],
            environment: testEnvironment.map { "\($0.key)=\($0.value)" },
            workingDirectory: nil, standardInput: nil, standardOutput: writeEnd, standardError: nil))
        close(writeEnd)
        let helper = try spawned.get()
        var child: Int32?
        defer {
            killIfAlive(child)
            _ = kill(helper, SIGKILL)
            var status: Int32 = 0
            _ = waitpid(helper, &status, 0)
        }

        child = readPID(from: readEnd)
        let sleeper = try #require(child)
        // Wait until the launcher has exec'd sleep, i.e. set the death signal and passed its checks.
        #expect(await eventually(within: .seconds(20)) { commandName(of: sleeper) == "sleep" })

        #expect(kill(helper, SIGKILL) == 0)
        #expect(await eventually(within: .seconds(10)) { isGone(sleeper) })
    }

    /// The watchdog process kills the registered groups, grandchildren included, once its input
    /// closes (as it does when the gateway dies).
    @Test func theWatchdogProcessKillsRegisteredGroupsWhenTheGatewayGoes() async throws {
        let watchdog = try GroupWatchdogClient.start(executable: [try Self.gateway()])
        defer { killIfAlive(watchdog.pid) }
        let lines = LineCollector()
        let spawner = ProcessSpawner(relay: lines.relay(), watchdog: watchdog)
        let process = try spawner.spawn(shell("sleep 30 & echo $!; wait"))
        var grandchild: Int32?
        defer {
            process.signalGroup(SIGKILL)
            killIfAlive(grandchild)
        }
        grandchild = await lines.pid(after: "[t#1] ")
        let sleeper = try #require(grandchild)
        // Give the (debug-built) watchdog time to start reading.
        #expect(await eventually(within: .seconds(20)) { commandName(of: watchdog.pid) == "gateway" })

        watchdog.close()
        #expect(await process.exitStatus(within: .seconds(10)) == .signaled(SIGKILL, coreDumped: false))
        #expect(await eventually(within: .seconds(5)) { isGone(sleeper) })
        #expect(await eventually(within: .seconds(10)) { isGone(watchdog.pid) })
    }
}

private func commandName(of pid: Int32) -> String? {
    guard let file = fopen("/proc/\(pid)/comm", "r") else { return nil }
    defer { fclose(file) }
    var buffer = [CChar](repeating: 0, count: 64)
    guard fgets(&buffer, Int32(buffer.count), file) != nil else { return nil }
    let bytes = buffer.prefix { $0 != 0 && $0 != 10 }.map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
}

/// Reads one line holding a pid, waiting at most 20 s.
private func readPID(from descriptor: Int32) -> Int32? {
    var text: [UInt8] = []
    var byte: UInt8 = 0
    while !text.contains(UInt8(ascii: "\n")) {
        var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, 20_000) == 1, read(descriptor, &byte, 1) == 1 else { return nil }
        text.append(byte)
    }
    return Int32(String(decoding: text.dropLast(), as: UTF8.self))
}

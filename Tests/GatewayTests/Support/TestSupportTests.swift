import NIOCore
import NIOPosix
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The support code is what every end-to-end test stands on, so it is tested too.
@Suite struct TestSupportTests {
    @Test func gatewayBinaryRuns() async throws {
        let child = try ChildProcess.gateway(["version"])
        let line = try await child.waitForOutput(containing: "gateway ", in: .stdout)
        #expect(line.hasPrefix("gateway "))
        #expect(try await child.waitForExit() == 0)
    }

    @Test func capturesBothStreamsAndExitCode() async throws {
        let child = try ChildProcess(
            executable: "/bin/sh",
            arguments: ["-c", "echo out-$GREETING; echo err >&2; printf partial; exit 3"],
            environment: ["GREETING": "hello"]
        )
        #expect(try await child.waitForExit() == 3)
        try await child.waitForOutputToEnd()
        #expect(child.stdoutLines == ["out-hello", "partial"])
        #expect(child.stderrLines == ["err"])
    }

    @Test func waitForOutputFailsFastWhenTheChildEnds() async throws {
        let child = try ChildProcess(executable: "/bin/sh", arguments: ["-c", "echo bye"])
        let start = ContinuousClock.now
        await #expect(throws: TestSupportError.self) {
            try await child.waitForOutput(containing: "never", timeout: .seconds(20))
        }
        #expect(ContinuousClock.now - start < .seconds(10))
    }

    @Test func terminateBySignal() async throws {
        let child = try ChildProcess(executable: "/bin/sh", arguments: ["-c", "echo ready; exec sleep 60"])
        try await child.waitForOutput(containing: "ready")
        child.terminate(signal: SIGTERM)
        #expect(try await child.waitForExit() == 128 + SIGTERM)
    }

    @Test func deinitKillsTheChild() async throws {
        var child: ChildProcess? = try ChildProcess(executable: "/bin/sh", arguments: ["-c", "exec sleep 60"])
        let pid = child!.pid
        child = nil
        // Reaped by deinit, so the pid no longer names our child.
        #expect(kill(pid, 0) == -1)
    }

    @Test func freePortCanBeBoundAndWaitedFor() async throws {
        // A port that was free a moment ago can be taken by any connection another test opens
        // (its ephemeral local port) before this bind: up to three ports are tried.
        for attempt in 1...3 {
            let port = try freePort()
            #expect((1...65535).contains(port))
            await #expect(throws: TestSupportError.self) {
                try await waitForPort(port, timeout: .milliseconds(200))
            }
            let server: Channel
            do {
                server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                    .bind(host: "127.0.0.1", port: port)
                    .get()
            } catch let error as IOError where error.errnoCode == EADDRINUSE && attempt < 3 {
                continue
            }
            try await waitForPort(port)
            try await server.close()
            return
        }
    }

    @Test func aRefusingPortRefusesConnectionsAndCannotBeTaken() async throws {
        let refusing = try RefusingPort()
        await #expect(throws: TestSupportError.self) {
            try await waitForPort(refusing.port, timeout: .milliseconds(200))
        }
        // Servers here bind with SO_REUSEADDR; that must not let them share the port.
        await #expect(throws: IOError.self) {
            try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .bind(host: "127.0.0.1", port: refusing.port)
                .get()
        }
    }
}

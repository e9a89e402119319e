import Supervisor
import Testing

@testable import Keeper

@Suite struct KeeperFramingTests {
    static let hello = KeeperMessage.hello(
        .init(
            keeperPID: 100, generation: 2,
            listeners: [.init(address: "127.0.0.1:8080", role: "proxy"), .init(address: "127.0.0.1:9901", role: "admin")],
            instances: [.init(deployment: "shop", index: 1, pid: 4242, port: 9100, startedAt: 1_700_000_000.5, lastState: "READY")]))

    static let all: [KeeperMessage] = [
        hello,
        .spawned(.init(request: 7, pid: 99, startedAt: 12.25)),
        .spawnFailed(.init(request: 8, reason: "no such file")),
        .exited(.init(pid: 99, status: .signaled(9, coreDumped: false))),
        .exited(.init(pid: 98, status: .exited(3))),
        .drain(reason: "upgrade"),
        .ready(workerPID: 555),
        .spawn(.init(request: 9, process: .init(
            name: "shop#2", arguments: ["app", "--port", "9101"], environment: ["PORT": "9101"],
            placement: .init(deployment: "shop", index: 2, port: 9101)))),
        .signal(pid: 99, signal: 15),
        .startAccepting,
        .stoppedAccepting,
        .instanceState(pid: 99, state: "STOPPING"),
        .upgrade(binary: "/usr/local/bin/gateway"),
        .upgrade(binary: nil),
        .drained(connections: 12),
        .shutdown(reason: "SIGTERM"),
        .reload,
        .upgradeFinished(ok: false, message: "worker 3 exited before it was ready"),
        .stopping(reason: "POST /shutdown"),
        .reloaded(ok: true, message: "unchanged"),
    ]

    @Test func everyMessageComesBackAsItWent() throws {
        var decoder = KeeperFraming.Decoder()
        for message in Self.all { decoder.append(try KeeperFraming.encode(message)) }
        var decoded: [KeeperMessage] = []
        while let message = try decoder.next() { decoded.append(message) }
        #expect(decoded == Self.all)
    }

    /// A stream read in pieces of every size still yields the same messages in order.
    @Test(arguments: [1, 2, 3, 7, 64])
    func framesSplitAnywhereAreReassembled(piece: Int) throws {
        let bytes = try Self.all.flatMap { try KeeperFraming.encode($0) }
        var decoder = KeeperFraming.Decoder()
        var decoded: [KeeperMessage] = []
        var index = 0
        while index < bytes.count {
            decoder.append(bytes[index..<min(bytes.count, index + piece)])
            index += piece
            while let message = try decoder.next() { decoded.append(message) }
        }
        #expect(decoded == Self.all)
    }

    @Test func anotherVersionIsRefusedByName() throws {
        var frame = try KeeperFraming.encode(.drained(connections: 0))
        frame[2] = 9
        var decoder = KeeperFraming.Decoder()
        decoder.append(frame)
        #expect(throws: KeeperFraming.Failure.unsupportedVersion(9)) { try decoder.next() }
    }

    @Test func garbageAndOversizedFramesAreRefused() throws {
        var garbage = KeeperFraming.Decoder()
        garbage.append(Array("GET / HTTP/1.1\r\n".utf8))
        #expect(throws: KeeperFraming.Failure.notAKeeperFrame) { try garbage.next() }

        var huge = KeeperFraming.Decoder()
        huge.append(KeeperFraming.magic + [KeeperFraming.version, 0x7F, 0xFF, 0xFF, 0xFF])
        #expect(throws: KeeperFraming.Failure.tooLarge(0x7FFF_FFFF)) { try huge.next() }

        var broken = KeeperFraming.Decoder()
        broken.append(KeeperFraming.magic + [KeeperFraming.version, 0, 0, 0, 2] + Array("{}".utf8))
        #expect(throws: (any Error).self) { try broken.next() }
    }
}

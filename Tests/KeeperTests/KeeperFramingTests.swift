import Foundation
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
        .hello(.init(keeperPID: 1, generation: 1, listeners: [], instances: [], features: [KeeperMessage.Hello.logsFeature])),
        .spawn(.init(request: 10, process: .init(
            name: "shop#3", arguments: ["app"], environment: [:], placement: .init(deployment: "shop", index: 3, port: 9102),
            logFile: .init(path: "/var/log/shop#3.log", maxBytes: 4096, keep: 2)))),
        .readLogs(.init(request: 4, query: .init(instance: "shop#1", lines: 10, after: 41, waitMilliseconds: 10_000))),
        .logs(.init(request: 4, page: .init(
            lines: [.init(sequence: 42, time: 1_700_000_000.25, stream: .stderr, pid: 99, text: "oops \u{1F600} \"quoted\"")],
            lastSequence: 42, gap: false))),
    ]

    /// A hello from a keeper that predates `features` still decodes (the field is absent), and
    /// so does a spawn order without a log file: messages grow within version 1.
    @Test func olderHelloAndSpawnOrdersStillDecode() throws {
        let hello = #"{"hello":{"_0":{"keeperPID":1,"generation":2,"listeners":[],"instances":[]}}}"#
        let decoded = try JSONDecoder().decode(KeeperMessage.self, from: Data(hello.utf8))
        #expect(decoded == .hello(.init(keeperPID: 1, generation: 2, listeners: [], instances: [])))
        var worker = WorkerStateMachine()
        guard case .hello(let older) = decoded else { return }
        _ = worker.received(.hello(older))
        #expect(!worker.keeperKeepsLogs)
        #expect(worker.readLogs(.init(instance: "shop#1", lines: 5)) == nil, "an older keeper is never sent readLogs")
    }

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

import Supervisor
import Testing

@testable import Keeper

@Suite struct WorkerStateMachineTests {
    static let hello = KeeperMessage.Hello(
        keeperPID: 1, generation: 3, listeners: [.init(address: "127.0.0.1:8080", role: "proxy")],
        instances: [.init(deployment: "shop", index: 1, pid: 10, port: 9100, startedAt: 1, lastState: "READY")])

    static func request(_ index: Int) -> SpawnRequest {
        .init(name: "shop#\(index)", arguments: ["app"], environment: ["PORT": "\(9099 + index)"],
              placement: .init(deployment: "shop", index: index, port: 9099 + index))
    }

    @Test func aWorkerAdoptsServesDrainsAndExits() {
        var worker = WorkerStateMachine()
        #expect(worker.spawn(Self.request(2)) == nil,
                "no orders before hello")
        #expect(worker.received(.hello(Self.hello)) == [.adopt(Self.hello)])
        #expect(worker.becameReady(workerPID: 77) == [.send(.ready(workerPID: 77))])
        #expect(worker.state == .serving(Self.hello))

        let order = worker.spawn(Self.request(2))
        guard case .send(.spawn(let sent))? = order else {
            Issue.record("no spawn order: \(String(describing: order))")
            return
        }
        #expect(sent.request == 1)
        #expect(worker.received(.spawned(.init(request: 1, pid: 11, startedAt: 5)))
            == [.spawned(.init(request: 1, pid: 11, startedAt: 5), order: sent)])
        #expect(worker.received(.exited(.init(pid: 11, status: .exited(0)))) == [.instanceExited(.init(pid: 11, status: .exited(0)))])

        #expect(worker.stoppedAccepting() == [], "only a draining worker hands accepting on")
        #expect(worker.received(.drain(reason: "upgrade")) == [.startDraining(reason: "upgrade")])
        #expect(worker.stoppedAccepting() == [.send(.stoppedAccepting)])
        #expect(worker.spawn(Self.request(3)) == nil,
                "a draining worker starts nothing")
        #expect(worker.drainFinished(connections: 3) == [.send(.drained(connections: 3)), .exit(reason: "drained", failure: false)])
        #expect(worker.linkClosed() == [])
    }

    @Test func logsRequestsAreNumberedAndMatchedToTheirAnswers() {
        var worker = WorkerStateMachine()
        let query = OutputQuery(instance: "shop#1", lines: 20, after: 7, waitMilliseconds: 1000)
        #expect(worker.readLogs(query) == nil, "nothing before hello")
        var hello = Self.hello
        hello.features = [KeeperMessage.Hello.logsFeature]
        #expect(worker.received(.hello(hello)) == [.adopt(hello)])
        #expect(worker.keeperKeepsLogs)
        #expect(worker.readLogs(query) == .send(.readLogs(.init(request: 1, query: query))))
        #expect(worker.readLogs(query) == .send(.readLogs(.init(request: 2, query: query))))
        let page = OutputPage(lines: [.init(sequence: 8, time: 1, stream: .stdout, pid: 10, text: "hi")], lastSequence: 8, gap: false)
        // Answers may come in any order (each waits for its own lines).
        #expect(worker.received(.logs(.init(request: 2, page: page))) == [.logsRead(.init(request: 2, page: page))])
        #expect(worker.becameReady(workerPID: 5) == [.send(.ready(workerPID: 5))])
        #expect(worker.received(.logs(.init(request: 1, page: page))) == [.logsRead(.init(request: 1, page: page))])
        // A draining worker still answers the admin API's reads.
        _ = worker.received(.drain(reason: "upgrade"))
        #expect(worker.readLogs(query) == .send(.readLogs(.init(request: 3, query: query))))
        // An answer to a request never made cannot be trusted.
        #expect(worker.received(.logs(.init(request: 9, page: page)))
            == [.exit(reason: "keeper protocol error: an answer to logs request 9, which was never made", failure: true)])
        #expect(worker.readLogs(query) == nil)
    }

    @Test func messagesOutOfTurnEndTheWorker() {
        var early = WorkerStateMachine()
        #expect(early.received(.drain(reason: "x")) == [.exit(reason: "keeper protocol error: unexpected drain while awaiting hello", failure: true)])

        var unknownAnswer = WorkerStateMachine()
        _ = unknownAnswer.received(.hello(Self.hello))
        #expect(unknownAnswer.received(.spawnFailed(.init(request: 9, reason: "x")))
            == [.exit(reason: "keeper protocol error: an answer to spawn order 9, which was never given", failure: true)])

        var twice = WorkerStateMachine()
        _ = twice.received(.hello(Self.hello))
        #expect(twice.received(.hello(Self.hello)).first == .exit(reason: "keeper protocol error: unexpected hello while adopting", failure: true))

        var orphan = WorkerStateMachine()
        _ = orphan.received(.hello(Self.hello))
        #expect(orphan.linkClosed() == [.exit(reason: "the keeper closed the link", failure: true)])
    }

    @Test func shutdownReloadAndUpgradeResultsReachAServingWorker() {
        var worker = WorkerStateMachine()
        _ = worker.received(.hello(Self.hello))
        #expect(worker.upgrade(binary: nil) == nil, "only a serving worker asks for an upgrade")
        #expect(worker.received(.reload) == [], "a reload before serving waits for the next one")
        _ = worker.becameReady(workerPID: 5, adopted: 1)
        #expect(worker.upgrade(binary: "/new") == .send(.upgrade(binary: "/new")))
        #expect(worker.received(.reload) == [.reload])
        #expect(worker.received(.startAccepting) == [.startAccepting])
        #expect(worker.reloadFinished(ok: true, message: "unchanged") == [.send(.reloaded(ok: true, message: "unchanged"))])
        #expect(worker.received(.upgradeFinished(ok: false, message: "no")) == [.upgradeFinished(ok: false, message: "no")])
        #expect(worker.received(.shutdown(reason: "SIGTERM")) == [.startShutdown(reason: "SIGTERM")])
        #expect(worker.received(.shutdown(reason: "SIGTERM")) == [], "a second shutdown changes nothing")
        #expect(worker.drainFinished(connections: 0).last == .exit(reason: "drained", failure: false))
    }

    @Test func aWorkerThatShutsDownOnItsOwnTellsTheKeeper() {
        var worker = WorkerStateMachine()
        _ = worker.received(.hello(Self.hello))
        _ = worker.becameReady(workerPID: 5)
        #expect(worker.shuttingDown(reason: "POST /shutdown") == [.send(.stopping(reason: "POST /shutdown"))])
        #expect(worker.state == .draining)
        #expect(worker.shuttingDown(reason: "again") == [])
    }
}

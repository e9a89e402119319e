import Supervisor
import Testing

@testable import Keeper

@Suite struct InstanceTableTests {
    static func order(_ deployment: String, _ index: Int, port: Int) -> SpawnRequest.Placement {
        .init(deployment: deployment, index: index, port: port)
    }

    @Test func theTableANewWorkerGetsFollowsSpawnsStatesAndExits() {
        var table = InstanceTable()
        table.spawned(Self.order("shop", 2, port: 9101), pid: 20, startedAt: 2)
        table.spawned(Self.order("shop", 1, port: 9100), pid: 10, startedAt: 1)
        table.spawned(Self.order("api", 1, port: 9200), pid: 30, startedAt: 3)
        table.reported(pid: 10, state: "READY")
        table.reported(pid: 99, state: "READY")  // long gone: ignored
        #expect(table.instances.map(\.pid) == [30, 10, 20])
        #expect(table.instance(pid: 10)?.lastState == "READY")
        #expect(table.instance(pid: 20)?.lastState == "STARTING")
        #expect(table.exited(pid: 20)?.port == 9101)
        #expect(table.exited(pid: 20) == nil)
        #expect(table.count == 2)
        let hello = KeeperMessage.Hello(keeperPID: 1, generation: 2, listeners: [], instances: table.instances)
        #expect(hello.instances == [
            .init(deployment: "api", index: 1, pid: 30, port: 9200, startedAt: 3, lastState: "STARTING"),
            .init(deployment: "shop", index: 1, pid: 10, port: 9100, startedAt: 1, lastState: "READY"),
        ])
    }
}

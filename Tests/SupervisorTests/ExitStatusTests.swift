import Glibc
import Testing
@testable import Supervisor

@Suite struct ExitStatusTests {
    @Test func describesExitsAndSignalsTheWayOperatorsReadThem() {
        #expect(ExitStatus.exited(1).description == "exit status 1")
        #expect(ExitStatus.signaled(9, coreDumped: false).description == "signal 9 (KILL)")
        #expect(ExitStatus.signaled(SIGSEGV, coreDumped: true).description == "signal 11 (SEGV), core dumped")
        #expect(ExitStatus.signaled(40, coreDumped: false).description == "signal 40")
        #expect(ExitStatus.signalName(SIGHUP) == "HUP")
        #expect(ExitStatus.signalName(SIGSYS) == "SYS")
    }

    @Test func decodesWaitStatusWords() {
        #expect(ExitStatus(waitStatus: 3 << 8) == .exited(3))
        #expect(ExitStatus(waitStatus: 9) == .signaled(9, coreDumped: false))
        #expect(ExitStatus(waitStatus: 0x80 | 6) == .signaled(6, coreDumped: true))
    }

    @Test func spawnErrorNamesCommandInstanceAndReason() {
        let error = SpawnError(name: "shop#2", arguments: ["python3", "app.py"], errno: ENOENT)
        #expect(error.description == "cannot start 'python3 app.py' for shop#2: No such file or directory")
    }
}

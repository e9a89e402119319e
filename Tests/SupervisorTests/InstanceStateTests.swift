import Testing
import Supervisor

@Test func instanceStateNamesAreTheOperatorsNames() {
    #expect(Supervisor.InstanceState.allCases.map(\.rawValue) ==
        ["STARTING", "READY", "STOPPING", "STOPPED", "BACKOFF", "FAILED"])
}

import Synchronization
import Testing

@testable import RequestControl

/// Records activity calls as "pre g1 <state>", "suspended g1", "resume g1"; can hang in preSuspend.
final class RecordingActivity: SuspendableActivity {
    let name: String
    let hang: Gate?
    let stateSeen: @Sendable () -> String
    let shared: SharedLog

    final class SharedLog: Sendable {
        let entries = Mutex<[String]>([])
        func append(_ entry: String) { entries.withLock { $0.append(entry) } }
        var all: [String] { entries.withLock { $0 } }
    }

    init(_ name: String, shared: SharedLog, hang: Gate? = nil, stateSeen: @escaping @Sendable () -> String = { "" }) {
        self.name = name
        self.hang = hang
        self.stateSeen = stateSeen
        self.shared = shared
    }

    func preSuspend(_ scope: SuspendScope) async {
        shared.append("pre \(name)\(stateSeen())")
        if let hang { await hang.wait() }
    }

    func suspended(_ scope: SuspendScope) async {
        shared.append("suspended \(name)\(stateSeen())")
    }

    func resume(_ scope: SuspendScope) async {
        shared.append("resume \(name)\(stateSeen())")
    }
}

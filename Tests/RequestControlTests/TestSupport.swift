import Synchronization
import Testing

@testable import RequestControl

/// shop: entry points "http" and "admin", backends b1 and b2; blog: entry point "http".
func makeConfiguration(
    globalLimit: Int? = nil, shopLimit: Int? = nil, httpLimit: Int? = nil
) -> RequestControlConfiguration {
    RequestControlConfiguration(
        globalLimit: globalLimit,
        deployments: [
            .init(
                name: "shop", limit: shopLimit,
                entryPoints: [.init(name: "http", limit: httpLimit), .init(name: "admin", limit: nil)],
                backends: ["127.0.0.1:9001", "127.0.0.1:9002"]),
            .init(name: "blog", limit: nil, entryPoints: [.init(name: "http", limit: nil)], backends: []),
        ])
}

extension RequestController {
    func point(_ deployment: String, _ entryPoint: String) -> ControlPoint {
        controlPoint(deployment: deployment, entryPoint: entryPoint)!
    }
}

extension ControlPoint {
    /// Begins a request that must be admitted.
    func admit(sourceLocation: SourceLocation = #_sourceLocation) -> RequestToken? {
        switch beginRequest() {
        case .run(let token):
            return token
        case .rejected(let reason):
            Issue.record("rejected: \(reason)", sourceLocation: sourceLocation)
            return nil
        }
    }

    /// The reason of a rejection, nil if admitted (the token is then completed with 200).
    func rejection() -> RejectionReason? {
        switch beginRequest() {
        case .run(let token):
            token.complete(status: 200)
            return nil
        case .rejected(let reason):
            return reason
        }
    }
}

/// Delivers every state change as it happens, so a test waits for the transition itself.
final class StateEvents: Sendable {
    let stream: AsyncStream<Event>
    private let continuation: AsyncStream<Event>.Continuation
    private let log = Mutex<[Event]>([])

    struct Event: Sendable, Equatable {
        var scope: SuspendScope
        var state: SuspendState
    }

    init(_ controller: RequestController) {
        (stream, continuation) = AsyncStream.makeStream(of: Event.self)
        controller.onStateChange = { [self] scope, state in
            self.log.withLock { $0.append(Event(scope: scope, state: state)) }
            self.continuation.yield(Event(scope: scope, state: state))
        }
    }

    /// Waits until `scope` enters `state` (events before it are skipped).
    func wait(for scope: SuspendScope, _ state: SuspendState) async {
        for await event in stream where event.scope == scope && event.state == state {
            return
        }
    }

    var all: [Event] { log.withLock { $0 } }
}

/// A gate a test opens once; waiting on it never polls.
final class Gate: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func wait() async {
        await withCheckedContinuation { continuation in
            let open = state.withLock { state in
                if state.open { return true }
                state.waiters.append(continuation)
                return false
            }
            if open { continuation.resume() }
        }
    }

    func open() {
        let waiters = state.withLock { state in
            state.open = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}

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

/// An atomic integer tasks can share (an `Atomic` local cannot be captured by a task).
final class SharedCount: Sendable {
    private let value = Atomic(0)
    func increment() { value.wrappingAdd(1, ordering: .relaxed) }
    var current: Int { value.load(ordering: .relaxed) }
}

/// A flag set once, read with acquire ordering.
final class SharedFlag: Sendable {
    private let value = Atomic(false)
    func set() { value.store(true, ordering: .releasing) }
    var isSet: Bool { value.load(ordering: .acquiring) }
}

import Supervisor

/// A worker's side of the link to its keeper, as a pure state machine: what it must do with
/// each message, and which messages it may send when.
///
/// `awaitingHello` → (hello, with the listening sockets) `adopting` → (its listeners accept and
/// the handed instances are being checked) `serving` → (drain) `draining` → `done`.
/// Spawn orders are numbered here, so each answer finds its order; a message out of turn, or a
/// keeper that closes the link, ends the worker (a worker without its keeper cannot spawn,
/// signal or be replaced, and the keeper starts a new one if it still runs).
public struct WorkerStateMachine: Sendable {
    public enum State: Equatable, Sendable {
        case awaitingHello
        case adopting(KeeperMessage.Hello)
        case serving(KeeperMessage.Hello)
        case draining
        case done
    }

    public enum Action: Equatable, Sendable {
        /// Listen on the sockets that came with hello (in its listener order) and adopt its
        /// instances: health-check them before they join the rotation.
        case adopt(KeeperMessage.Hello)
        /// Send this to the keeper.
        case send(KeeperMessage)
        /// An order was answered.
        case spawned(KeeperMessage.Spawned, order: KeeperMessage.SpawnOrder)
        case spawnFailed(reason: String, order: KeeperMessage.SpawnOrder)
        /// An instance exited (reaped by the keeper).
        case instanceExited(KeeperMessage.Exited)
        /// Stop accepting, let what is in flight finish, then call `drainFinished()`.
        case startDraining(reason: String)
        /// Run the gateway's graceful shutdown (instances included), then exit.
        case startShutdown(reason: String)
        /// Reload the configuration, then call `reloadFinished(ok:message:)`.
        case reload
        /// The upgrade this worker asked for ended.
        case upgradeFinished(ok: Bool, message: String)
        /// Accept on the listening sockets (they were bound paused).
        case startAccepting
        /// Exit now: `reason` says why (the drain is done, or the link cannot be trusted).
        case exit(reason: String, failure: Bool)
        /// A `readLogs` was answered.
        case logsRead(KeeperMessage.LogsAnswer)
    }

    public private(set) var state = State.awaitingHello
    private var nextRequest = 1
    private var pendingOrders: [Int: KeeperMessage.SpawnOrder] = [:]
    private var nextLogsRequest = 1
    private var pendingLogs: Set<Int> = []
    /// The keeper's hello listed ``KeeperMessage/Hello/logsFeature``.
    public private(set) var keeperKeepsLogs = false

    public init() {}

    /// A message from the keeper.
    public mutating func received(_ message: KeeperMessage) -> [Action] {
        switch (state, message) {
        case (.awaitingHello, .hello(let hello)):
            state = .adopting(hello)
            keeperKeepsLogs = hello.features?.contains(KeeperMessage.Hello.logsFeature) ?? false
            return [.adopt(hello)]
        case (.adopting, .logs(let answer)), (.serving, .logs(let answer)), (.draining, .logs(let answer)):
            guard pendingLogs.remove(answer.request) != nil else {
                return protocolError("an answer to logs request \(answer.request), which was never made")
            }
            return [.logsRead(answer)]
        case (.adopting, .spawned(let answer)), (.serving, .spawned(let answer)), (.draining, .spawned(let answer)):
            guard let order = pendingOrders.removeValue(forKey: answer.request) else {
                return protocolError("an answer to spawn order \(answer.request), which was never given")
            }
            return [.spawned(answer, order: order)]
        case (.adopting, .spawnFailed(let answer)), (.serving, .spawnFailed(let answer)), (.draining, .spawnFailed(let answer)):
            guard let order = pendingOrders.removeValue(forKey: answer.request) else {
                return protocolError("an answer to spawn order \(answer.request), which was never given")
            }
            return [.spawnFailed(reason: answer.reason, order: order)]
        case (.adopting, .exited(let exit)), (.serving, .exited(let exit)), (.draining, .exited(let exit)):
            return [.instanceExited(exit)]
        case (.serving, .drain(let reason)):
            state = .draining
            return [.startDraining(reason: reason)]
        case (.adopting, .shutdown(let reason)), (.serving, .shutdown(let reason)):
            state = .draining
            return [.startShutdown(reason: reason)]
        case (.draining, .drain), (.draining, .shutdown), (.draining, .reload), (.adopting, .reload):
            return []
        case (.serving, .reload):
            return [.reload]
        case (.serving, .startAccepting):
            return [.startAccepting]
        case (.draining, .startAccepting):
            return []
        case (.serving, .upgradeFinished(let ok, let message)), (.draining, .upgradeFinished(let ok, let message)):
            return [.upgradeFinished(ok: ok, message: message)]
        default:
            return protocolError("unexpected \(Self.name(message)) while \(Self.name(state))")
        }
    }

    /// The listeners accept and the handed instances are being checked: the keeper may drain the
    /// worker this one replaces.
    public mutating func becameReady(workerPID: Int32, adopted: Int = 0) -> [Action] {
        guard case .adopting(let hello) = state else { return [] }
        state = .serving(hello)
        return [.send(.ready(workerPID: workerPID, adopted: adopted))]
    }

    /// The worker shuts the gateway down on its own (`POST /shutdown`, its own signal): the
    /// keeper must not replace it.
    public mutating func shuttingDown(reason: String) -> [Action] {
        switch state {
        case .adopting, .serving:
            state = .draining
            return [.send(.stopping(reason: reason))]
        case .awaitingHello, .draining, .done:
            return []
        }
    }

    /// A replaced worker closed its listeners (the first thing it does when told to drain).
    public func stoppedAccepting() -> [Action] {
        guard state == .draining else { return [] }
        return [.send(.stoppedAccepting)]
    }

    /// A reload the keeper asked for has finished.
    public func reloadFinished(ok: Bool, message: String) -> [Action] {
        guard case .serving = state else { return [] }
        return [.send(.reloaded(ok: ok, message: message))]
    }

    /// Asks the keeper for a new worker; nil unless this one serves.
    public func upgrade(binary: String?) -> Action? {
        guard case .serving = state else { return nil }
        return .send(.upgrade(binary: binary))
    }

    /// Numbers a spawn order and sends it; nil when the worker may not order spawns now.
    public mutating func spawn(_ process: SpawnRequest) -> Action? {
        switch state {
        case .adopting, .serving:
            let order = KeeperMessage.SpawnOrder(request: nextRequest, process: process)
            nextRequest += 1
            pendingOrders[order.request] = order
            return .send(.spawn(order))
        case .awaitingHello, .draining, .done:
            return nil
        }
    }

    /// Numbers a request for an instance's output and sends it; nil when the keeper does not
    /// keep output (an older keeper) or the link is not up.
    public mutating func readLogs(_ query: OutputQuery) -> Action? {
        switch state {
        case .adopting, .serving, .draining:
            guard keeperKeepsLogs else { return nil }
            let request = KeeperMessage.LogsRequest(request: nextLogsRequest, query: query)
            nextLogsRequest += 1
            pendingLogs.insert(request.request)
            return .send(.readLogs(request))
        case .awaitingHello, .done:
            return nil
        }
    }

    /// The drain finished: tell the keeper, then exit.
    public mutating func drainFinished(connections: Int) -> [Action] {
        guard state == .draining else { return [] }
        state = .done
        return [.send(.drained(connections: connections)), .exit(reason: "drained", failure: false)]
    }

    /// The keeper closed the link.
    public mutating func linkClosed() -> [Action] {
        guard state != .done else { return [] }
        state = .done
        return [.exit(reason: "the keeper closed the link", failure: true)]
    }

    private mutating func protocolError(_ what: String) -> [Action] {
        state = .done
        return [.exit(reason: "keeper protocol error: \(what)", failure: true)]
    }

    private static func name(_ message: KeeperMessage) -> String {
        switch message {
        case .hello: "hello"
        case .spawned: "spawned"
        case .spawnFailed: "spawnFailed"
        case .exited: "exited"
        case .drain: "drain"
        case .shutdown: "shutdown"
        case .reload: "reload"
        case .upgradeFinished: "upgradeFinished"
        case .startAccepting: "startAccepting"
        case .stoppedAccepting: "stoppedAccepting"
        case .stopping: "stopping"
        case .reloaded: "reloaded"
        case .ready: "ready"
        case .spawn: "spawn"
        case .signal: "signal"
        case .instanceState: "instanceState"
        case .upgrade: "upgrade"
        case .drained: "drained"
        case .logs: "logs"
        case .readLogs: "readLogs"
        }
    }

    private static func name(_ state: State) -> String {
        switch state {
        case .awaitingHello: "awaiting hello"
        case .adopting: "adopting"
        case .serving: "serving"
        case .draining: "draining"
        case .done: "done"
        }
    }
}

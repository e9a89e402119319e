import Supervisor

/// The instances a keeper runs, as the next worker must learn them: what each is (deployment,
/// index, port), when it started, and the last state a worker reported. The keeper updates it
/// from the orders it carries out and the exits it reaps; it never decides anything from it.
public struct InstanceTable: Equatable, Sendable {
    /// An instance is here from the moment its process exists until the keeper reaps it.
    private var byPID: [Int32: KeeperMessage.Instance] = [:]

    public init() {}

    /// Every instance, by deployment and index (the order a worker's table shows).
    public var instances: [KeeperMessage.Instance] {
        byPID.values.sorted { ($0.deployment, $0.index, $0.pid) < ($1.deployment, $1.index, $1.pid) }
    }

    public var count: Int { byPID.count }

    public func instance(pid: Int32) -> KeeperMessage.Instance? { byPID[pid] }

    /// The keeper started the instance `placement` as `pid`.
    public mutating func spawned(_ placement: SpawnRequest.Placement, pid: Int32, startedAt: Double) {
        byPID[pid] = KeeperMessage.Instance(
            deployment: placement.deployment, index: placement.index, pid: pid, port: placement.port, startedAt: startedAt,
            lastState: "STARTING")
    }

    /// An instance the keeper ran before it re-executed itself.
    public mutating func restore(_ instance: KeeperMessage.Instance) {
        byPID[instance.pid] = instance
    }

    /// A worker reported a new state; unknown pids (already reaped) are ignored.
    public mutating func reported(pid: Int32, state: String) {
        byPID[pid]?.lastState = state
    }

    /// The keeper reaped `pid`.
    @discardableResult
    public mutating func exited(pid: Int32) -> KeeperMessage.Instance? {
        byPID.removeValue(forKey: pid)
    }
}

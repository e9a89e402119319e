import Foundation
import Logging
import Membership
import Supervisor

/// This gateway's part in fleet-wide rolls (`gateway restart D --fleet`): it watches for roll
/// requests in etcd, and for a deployment whose instances it runs it waits for one of the
/// request's `maxUnavailable` slots, rolls its own instances while it holds the slot (the same
/// rolling restart as `gateway restart D`), and reports each step in its status key. Slot and
/// status live under the gateway's lease: if it dies mid-roll, both go with the lease and the next
/// host takes the slot.
actor FleetRoller {
    /// How often it looks for roll requests: one read of the rolls' prefix; a roll starts within it.
    static let requestPollInterval: Duration = .seconds(1)
    /// How often a host waiting for a slot tries again.
    static let slotPollInterval: Duration = .milliseconds(250)

    private let client: EtcdClient
    private let prefix: String
    private let supervisor: ProcessSupervisor
    private let membership: BackendMembership
    private let logger: Logger
    private var gatewayID = ""
    /// The gateway's lease: its slot and status go with it.
    private let lease: EtcdLease
    /// The roll id last finished per deployment.
    private var handled: [String: String] = [:]

    init(client: EtcdClient, prefix: String, lease: EtcdLease, supervisor: ProcessSupervisor, membership: BackendMembership, logger: Logger) {
        self.client = client
        self.lease = lease
        self.prefix = prefix
        self.supervisor = supervisor
        self.membership = membership
        self.logger = logger
    }

    func identify(_ id: String) {
        gatewayID = id
    }

    private func currentLease() async throws -> Int64 {
        try await lease.current().id
    }

    /// Until cancelled: looks for roll requests and takes its part in them.
    func run() async {
        while !Task.isCancelled {
            if let requests = try? await pendingRequests() {
                for (deployment, request) in requests.sorted(by: { $0.key < $1.key }) {
                    await take(part: request, in: deployment)
                }
            }
            try? await Task.sleep(for: Self.requestPollInterval)
        }
    }

    private func pendingRequests() async throws -> [String: FleetRoll.Request] {
        var requests: [String: FleetRoll.Request] = [:]
        for entry in try await client.range(prefix: FleetRoll.rollsPrefix(prefix)).entries {
            guard let (deployment, rest) = FleetRoll.split(key: entry.key, prefix: prefix), rest == "request",
                let request = FleetRoll.decode(FleetRoll.Request.self, entry.value), handled[deployment] != request.id
            else { continue }
            requests[deployment] = request
        }
        return requests
    }

    private func take(part request: FleetRoll.Request, in deployment: String) async {
        let runsIt = await membership.config.deployments.contains { $0.name == deployment && $0.process != nil }
        do {
            guard runsIt else {
                try await setStatus(.skipped, request, deployment, detail: "this gateway runs no instances of \(deployment)")
                handled[deployment] = request.id
                return
            }
            try await setStatus(.waiting, request, deployment)
            logger.info("fleet roll: waiting for a slot", metadata: ["deployment": "\(deployment)", "roll": "\(request.id)"])
            var slot: Int?
            while slot == nil, !Task.isCancelled {
                // A newer request replaces this one.
                if let current = try? await client.get(key: FleetRoll.requestKey(prefix: prefix, deployment: deployment)),
                    FleetRoll.decode(FleetRoll.Request.self, current.value)?.id != request.id
                {
                    return
                }
                // A host whose roll stopped halts the fleet's: nobody else starts.
                if let failed = try await failedGateway(request, deployment) {
                    try await setStatus(.skipped, request, deployment, detail: "halted: the roll failed on \(failed)")
                    handled[deployment] = request.id
                    logger.warning("fleet roll halted", metadata: ["deployment": "\(deployment)", "roll": "\(request.id)", "failed_on": "\(failed)"])
                    return
                }
                for index in 0..<max(1, request.maxUnavailable) {
                    let key = FleetRoll.slotKey(prefix: prefix, deployment: deployment, slot: index)
                    if try await client.createIfAbsent(key: key, value: gatewayID, lease: try await currentLease()) {
                        slot = index
                        break
                    }
                }
                if slot == nil {
                    try await setStatus(.waiting, request, deployment)  // again, in case the lease was renewed
                    try await Task.sleep(for: Self.slotPollInterval)
                }
            }
            guard let slot else { return }
            try await setStatus(.rolling, request, deployment, detail: "slot \(slot)")
            logger.info("fleet roll: slot taken; rolling", metadata: ["deployment": "\(deployment)", "roll": "\(request.id)", "slot": "\(slot)"])
            let state: FleetRoll.State
            let detail: String
            do {
                let report = try await supervisor.restart(deployment: deployment)
                state = report.ok ? .done : .failed
                detail = report.ok ? "\(report.steps.count) instance(s) rolled" : "the roll stopped: \(report.steps.last.map { "\($0)" } ?? "no step")"
            } catch {
                state = .failed
                detail = "\(error)"
            }
            try await setStatus(state, request, deployment, detail: detail)
            try? await client.delete(key: FleetRoll.slotKey(prefix: prefix, deployment: deployment, slot: slot))
            handled[deployment] = request.id
            logger.info("fleet roll: this gateway's part ended", metadata: [
                "deployment": "\(deployment)", "roll": "\(request.id)", "state": "\(state.rawValue)", "detail": "\(detail)",
            ])
        } catch {
            logger.warning("fleet roll: etcd unreachable; trying again", metadata: [
                "deployment": "\(deployment)", "roll": "\(request.id)", "error": "\(error)",
            ])
        }
    }

    private func failedGateway(_ request: FleetRoll.Request, _ deployment: String) async throws -> String? {
        let prefix = FleetRoll.statusKey(prefix: self.prefix, deployment: deployment, gateway: "")
        return try await client.range(prefix: prefix).entries.compactMap { FleetRoll.decode(FleetRoll.Status.self, $0.value) }
            .first { $0.id == request.id && $0.state == .failed }?.gateway
    }

    private func setStatus(_ state: FleetRoll.State, _ request: FleetRoll.Request, _ deployment: String, detail: String? = nil) async throws {
        let status = FleetRoll.Status(id: request.id, gateway: gatewayID, state: state, detail: detail)
        try await client.put(
            key: FleetRoll.statusKey(prefix: prefix, deployment: deployment, gateway: gatewayID), value: FleetRoll.encode(status),
            lease: try await currentLease())
    }
}

import Foundation
import RequestControl
import Supervisor

/// The supervisor's endpoints: the process table, rolling restarts, instance stop/start/restart,
/// reload and shutdown.
extension AdminAPI {
    func processes() async -> AdminResponse {
        .json(200, await processTable())
    }

    /// `/processes`'s document, also the `processes` of every `/events` state.
    func processTable() async -> ProcessTableAnswer {
        guard let operations else { return ProcessTableAnswer(processes: []) }
        let rows = await operations.supervisor.status()
        let snapshot = controller.snapshot()
        var backends: [String: BackendSnapshot] = [:]
        var deployments: [String: SuspendState] = [:]
        for deployment in snapshot.deployments {
            deployments[deployment.name] = deployment.state
            for backend in deployment.backends { backends["\(deployment.name) \(backend.address)"] = backend }
        }
        let entries = rows.map { row -> ProcessEntry in
            let backend = row.address.flatMap { backends["\(row.deployment) \($0)"] }
            var entry = ProcessEntry(row, active: backend?.active ?? 0, total: backend?.total ?? 0)
            // Traffic to a running instance may be held back by a suspend of the gateway, of its
            // deployment or of its backend; the widest scope that is not RUNNING says why.
            let scopes: [(SuspendScopeName, SuspendState?)] = [
                (.gateway, snapshot.state), (.deployment, deployments[row.deployment]), (.backend, backend?.state),
            ]
            if row.pid != nil, let (scope, state) = scopes.first(where: { $0.1 != nil && $0.1 != .running }) {
                entry.traffic = (state!, scope)
            }
            return entry
        }
        return ProcessTableAnswer(processes: entries)
    }

    func reload() async -> AdminResponse {
        guard let operations else { return .error(409, "the gateway was not started from a configuration file") }
        do {
            let changes = try await operations.reload()
            return .json(200, ReloadAnswer(ok: true, changes: changes))
        } catch {
            switch error {
            case .busy, .noConfigFile: return .error(409, error.description)
            case .invalid, .certificates: return .error(400, error.description)
            }
        }
    }

    func shutdown(_ request: AdminRequest) async -> AdminResponse {
        if let unknown = request.query.keys.sorted().first(where: { $0 != "timeout" }) {
            return .error(400, "unknown parameter '\(unknown)'; expected timeout")
        }
        var timeout: Duration?
        if let raw = request.query["timeout"] {
            // Checked before the conversion to Duration, which would trap on 1e300.
            guard let seconds = Double(raw), seconds >= 0, seconds <= Double(ConfigBounds.maxDurationSeconds) else {
                return .error(
                    400, "timeout must be a number of seconds from 0 to \(ConfigBounds.maxDurationSeconds) (365 days), got '\(raw)'")
            }
            timeout = .milliseconds(Int64((seconds * 1000).rounded()))
        }
        guard let operations else { return .error(409, "this gateway cannot be shut down through the admin API") }
        let effective: Duration
        if let timeout {
            effective = timeout
        } else {
            effective = await operations.membership.config.shutdownTimeout
        }
        var answer = AdminResponse.json(202, ShutdownAnswer(shuttingDown: true, timeoutSeconds: effective.seconds))
        // Started once the 202 is out: the shutdown closes every connection, this one too, and
        // a busy machine could otherwise get that far before the answer was written (the CLI
        // then saw a closed connection, not the 202).
        answer.afterWrite = { [timeout] in operations.requestShutdown(timeout: timeout) }
        return answer
    }

    /// `POST /upgrade[?binary=PATH]`: the keeper starts a new worker (from PATH, else its own
    /// binary); it adopts the instances and serves, then this worker drains and exits. The answer
    /// comes once the new worker serves or the upgrade failed (this worker then keeps serving).
    func upgrade(_ request: AdminRequest) async -> AdminResponse {
        if let unknown = request.query.keys.sorted().first(where: { $0 != "binary" }) {
            return .error(400, "unknown parameter '\(unknown)'; expected binary")
        }
        let binary = request.query["binary"]
        if let binary {
            guard binary.hasPrefix("/") else { return .error(400, "binary must be an absolute path, got '\(binary)'") }
            guard access(binary, X_OK) == 0 else {
                return .error(400, "binary '\(binary)' is not an executable file: \(String(cString: strerror(errno)))")
            }
        }
        guard let keeper = operations?.keeper else {
            return .error(409, "this gateway runs without a keeper (it was not started by `gateway run`), so it cannot replace itself")
        }
        events.publish("upgrade", "upgrade started" + (binary.map { " with \($0)" } ?? ""), ["binary": .optional(binary), "step": .string("started")])
        let outcome = await keeper.requestUpgrade(binary: binary)
        guard outcome.ok else {
            events.publish("upgrade", "upgrade failed: \(outcome.message)", ["step": .string("failed"), "error": .string(outcome.message)])
            return .error(500, "upgrade failed: \(outcome.message); this worker (pid \(getpid())) keeps serving")
        }
        events.publish("upgrade", "new worker serving; this one drains: \(outcome.message)", ["step": .string("finished"), "old_worker_pid": .int(Int(getpid()))])
        return .json(200, UpgradeAnswer(upgraded: true, message: outcome.message, oldWorkerPID: getpid()))
    }

    /// `/deployments/D/restart`, `/deployments/D/{stop,start}`, `/deployments/D/instances/N/{stop,start,restart}`.
    func deploymentOperation(_ request: AdminRequest) async -> AdminResponse {
        let parts = request.path.split(separator: "/", omittingEmptySubsequences: false).dropFirst(2).map {
            String($0).removingPercentEncoding ?? String($0)
        }
        let usage = "expected /deployments/NAME/{restart,stop,start} or /deployments/NAME/instances/N/{stop,start,restart}"
        let deployment: String
        let index: Int?
        let action: String
        switch parts.count {
        case 2:
            (deployment, index, action) = (parts[0], nil, parts[1])
        case 4 where parts[1] == "instances":
            guard let number = Int(parts[2]), number > 0 else {
                return .error(400, "instance must be a number such as 2, got '\(parts[2])'")
            }
            (deployment, index, action) = (parts[0], number, parts[3])
        default:
            return .error(404, "no admin endpoint \(request.path); \(usage)")
        }
        if action == "logs" { return await logs(request, deployment: deployment, index: index) }
        guard ["restart", "stop", "start"].contains(action) else { return .error(404, "no admin endpoint \(request.path); \(usage)") }
        guard request.method == "POST" else { return .error(405, "method \(request.method) not allowed on \(request.path); use POST") }
        if action == "restart", index == nil, request.query["fleet"] != nil {
            return await fleetRestart(request, deployment: deployment)
        }
        guard let operations else { return .error(409, "the gateway supervises no processes") }
        let config = await operations.membership.config
        guard let configured = config.deployments.first(where: { $0.name == deployment }) else {
            return .error(404, "no deployment '\(deployment)'")
        }
        guard configured.process != nil else {
            return .error(409, "deployment '\(deployment)' has fixed backends; the gateway does not run its processes")
        }
        do {
            switch (action, index) {
            case ("restart", nil):
                let report = try await operations.supervisor.restart(deployment: deployment)
                return .json(report.ok ? 200 : 500, RollAnswer(report))
            case ("restart", let index?):
                let report = try await operations.supervisor.restart(deployment: deployment, index: index)
                return .json(report.ok ? 200 : 500, RollAnswer(report))
            case ("stop", _):
                let rows = try await operations.supervisor.stop(deployment: deployment, index: index)
                return .json(200, InstancesAnswer(message: "stopped \(Self.names(rows))", instances: rows.map { ProcessEntry($0) }))
            default:
                let rows = try await operations.supervisor.start(deployment: deployment, index: index)
                return .json(200, InstancesAnswer(message: "started \(Self.names(rows))", instances: rows.map { ProcessEntry($0) }))
            }
        } catch {
            switch error.kind {
            case .notFound: return .error(404, error.message)
            case .conflict: return .error(409, error.message)
            case .failed: return .error(500, error.message)
            }
        }
    }

    /// `POST /deployments/D/restart?fleet=1[&max_unavailable=N][&timeout=S]`: every gateway of
    /// the fleet rolls its own instances of D, at most N hosts at once (the deployment's
    /// `fleet_max_unavailable`, 1 by default).
    private func fleetRestart(_ request: AdminRequest, deployment: String) async -> AdminResponse {
        guard let fleet else { return .error(409, "no fleet: this gateway has no `membership` (membership.etcd) in its configuration") }
        if let unknown = request.query.keys.sorted().first(where: { !["fleet", "max_unavailable", "timeout"].contains($0) }) {
            return .error(400, "unknown parameter '\(unknown)'; a fleet restart takes fleet, max_unavailable and timeout")
        }
        let configured = await operations?.membership.config.deployments.first { $0.name == deployment }
        var maxUnavailable = configured?.fleetMaxUnavailable ?? 1
        if let raw = request.query["max_unavailable"] {
            guard let value = Int(raw), (1...1000).contains(value) else {
                return .error(400, "max_unavailable must be a number of hosts from 1 to 1000, got '\(raw)'")
            }
            maxUnavailable = value
        }
        var timeout: Duration = .seconds(900)
        if let raw = request.query["timeout"] {
            guard let seconds = Double(raw), seconds > 0, seconds <= 86_400 else {
                return .error(400, "timeout must be a number of seconds from 0 to 86400, got '\(raw)'")
            }
            timeout = .milliseconds(Int64(seconds * 1000))
        }
        do {
            let answer = try await fleet.roll(deployment: deployment, maxUnavailable: maxUnavailable, timeout: timeout)
            return .json(answer.ok ? 200 : 500, answer)
        } catch {
            return .error(503, "etcd did not answer: \(error)")
        }
    }

    private static func names(_ rows: [InstanceStatus]) -> String {
        var seen: [String] = []
        for row in rows where !seen.contains(row.name) { seen.append(row.name) }
        return seen.joined(separator: ", ")
    }
}

struct ProcessTableAnswer: Encodable {
    var processes: [ProcessEntry]
}

/// One row of `GET /processes`; absent values are `null`, not missing, so clients see every
/// column.
struct ProcessEntry: Encodable {
    var row: InstanceStatus
    var active: Int
    var total: Int
    /// RequestControl holds its traffic back: the suspend state and the scope it was set on.
    var traffic: (state: SuspendState, scope: SuspendScopeName)?

    init(_ row: InstanceStatus, active: Int = 0, total: Int = 0) {
        self.row = row
        self.active = active
        self.total = total
    }

    enum Keys: String, CodingKey {
        case deployment, instance, index, pid, port, state, reason, ready, active, total, restarts, crashes, command
        case uptimeSeconds = "uptime_s", rssBytes = "rss_bytes", cpuPercent = "cpu_percent", lastExit = "last_exit"
        case plannedRestarts = "planned_restarts", processState = "process_state", trafficState = "traffic_state"
        case suspendedBy = "suspended_by"
    }

    /// `state` as shown: the process's own, unless it runs and a suspend holds its traffic back
    /// (SUSPENDED once the drain is through, DRAINING before); `ready` is then false.
    var shownState: String {
        guard let traffic, row.state == .ready || row.state == .starting else { return row.state.rawValue }
        return traffic.state == .suspended ? "SUSPENDED" : "DRAINING"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(row.deployment, forKey: .deployment)
        try c.encode(row.name, forKey: .instance)
        try c.encode(row.index, forKey: .index)
        try c.encode(row.pid, forKey: .pid)
        try c.encode(row.port, forKey: .port)
        try c.encode(shownState, forKey: .state)
        try c.encode(row.state.rawValue, forKey: .processState)
        try c.encode(traffic?.state.rawValue ?? SuspendState.running.rawValue, forKey: .trafficState)
        try c.encode(traffic?.scope.rawValue, forKey: .suspendedBy)
        try c.encode(row.reason, forKey: .reason)
        try c.encode(row.ready && traffic == nil, forKey: .ready)
        try c.encode(active, forKey: .active)
        try c.encode(total, forKey: .total)
        try c.encode(row.restarts, forKey: .restarts)
        try c.encode(row.crashes, forKey: .crashes)
        try c.encode(row.plannedRestarts, forKey: .plannedRestarts)
        try c.encode(row.command, forKey: .command)
        try c.encode(row.uptime.map { ($0.seconds * 10).rounded() / 10 }, forKey: .uptimeSeconds)
        try c.encode(row.rssBytes, forKey: .rssBytes)
        try c.encode(row.cpuPercent.map { ($0 * 10).rounded() / 10 }, forKey: .cpuPercent)
        try c.encode(row.lastExit, forKey: .lastExit)
    }
}

/// The scope a suspend was set on, as `suspended_by` shows it.
enum SuspendScopeName: String {
    case gateway, deployment, backend
}

struct RollAnswer: Encodable {
    var report: RollReport

    init(_ report: RollReport) {
        self.report = report
    }

    struct Step: Encodable {
        var step: RollStep

        enum Keys: String, CodingKey {
            case instance, drained, error
            case oldPid = "old_pid", newPid = "new_pid", oldPort = "old_port", newPort = "new_port"
            case drainMilliseconds = "drain_ms", outOfRotationMilliseconds = "out_of_rotation_ms"
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: Keys.self)
            try c.encode(step.instance, forKey: .instance)
            try c.encode(step.oldPid, forKey: .oldPid)
            try c.encode(step.newPid, forKey: .newPid)
            try c.encode(step.oldPort, forKey: .oldPort)
            try c.encode(step.newPort, forKey: .newPort)
            try c.encode(step.drained, forKey: .drained)
            try c.encode(Int((step.drainTime.seconds * 1000).rounded()), forKey: .drainMilliseconds)
            try c.encode(Int((step.outOfRotation.seconds * 1000).rounded()), forKey: .outOfRotationMilliseconds)
            try c.encode(step.error, forKey: .error)
        }
    }

    enum Keys: String, CodingKey {
        case deployment, ok, message, steps
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(report.deployment, forKey: .deployment)
        try c.encode(report.ok, forKey: .ok)
        try c.encode(report.message, forKey: .message)
        try c.encode(report.steps.map(Step.init), forKey: .steps)
    }
}

struct InstancesAnswer: Encodable {
    var message: String
    var instances: [ProcessEntry]
}

struct ReloadAnswer: Encodable {
    var ok: Bool
    var changes: [String]
}

struct UpgradeAnswer: Encodable {
    var upgraded: Bool
    var message: String
    var oldWorkerPID: Int32

    enum CodingKeys: String, CodingKey {
        case upgraded, message
        case oldWorkerPID = "old_worker_pid"
    }
}

struct ShutdownAnswer: Encodable {
    var shuttingDown: Bool
    var timeoutSeconds: Double

    enum CodingKeys: String, CodingKey {
        case shuttingDown = "shutting_down"
        case timeoutSeconds = "timeout_s"
    }
}

extension Duration {
    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}

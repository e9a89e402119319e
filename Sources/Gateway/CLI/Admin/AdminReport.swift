/// What the operation commands print, as pure functions of the decoded answers (unit-tested).
enum AdminReport {
    /// One line per instance of a rolling restart:
    /// `shop#1: pid 1 -> 2, port 9100 -> 9103, drained in 12 ms, out of rotation 900 ms`,
    /// with `, failed: ...` when that step failed.
    static func restartStep(_ step: AdminAnswer.RestartStep) -> String {
        var parts = [
            "pid \(AdminFormat.number(step.oldPid)) -> \(AdminFormat.number(step.newPid))",
            "port \(AdminFormat.number(step.oldPort)) -> \(AdminFormat.number(step.newPort))",
        ]
        switch step.drained {
        case true?: parts.append("drained in \(AdminFormat.milliseconds(step.drainMs))")
        case false?: parts.append("not drained after \(AdminFormat.milliseconds(step.drainMs))")
        case nil: break
        }
        if step.outOfRotationMs != nil {
            parts.append("out of rotation \(AdminFormat.milliseconds(step.outOfRotationMs))")
        }
        if let error = step.error {
            parts.append("failed: \(error)")
        }
        return "\(step.instance): " + parts.joined(separator: ", ")
    }

    /// The last line of a restart: `shop: rolled 3 instances`, or the reason it stopped.
    static func restartSummary(_ answer: AdminAnswer.Restart, deployment: String) -> String {
        let name = answer.deployment ?? deployment
        let message = answer.message ?? (answer.ok ? "restarted" : "restart failed")
        return answer.ok ? "\(name): \(message)" : "restart of \(name) failed: \(message)"
    }

    /// `gateway reload`: the changes it made, one per line, or that there were none.
    static func reload(_ answer: AdminAnswer.Reload) -> [String] {
        let changes = answer.changes ?? []
        guard !changes.isEmpty else { return ["reloaded: no changes"] }
        let noun = changes.count == 1 ? "change" : "changes"
        return ["reloaded: \(changes.count) \(noun)"] + changes.map { "  \($0)" }
    }

    /// `gateway shutdown`: the gateway has accepted and is draining.
    /// `gateway status`: the keeper's and the worker's line above the process table.
    static func gatewayProcesses(_ health: AdminAnswer.Health) -> [String] {
        let version = health.version.map { ", version \($0)" } ?? ""
        guard let keeper = health.keeperPid else {
            return ["gateway   pid \(health.pid.map(String.init) ?? "-")  \(health.state) (no keeper)\(version)"]
        }
        return [
            "keeper    pid \(keeper)",
            "worker    pid \(health.pid.map(String.init) ?? "-")  generation \(health.workerGeneration.map(String.init) ?? "-")  \(health.state)\(version)",
            "",
        ]
    }

    static func shutdown(_ answer: AdminAnswer.Shutdown) -> String {
        guard answer.shuttingDown else { return "the gateway did not start shutting down" }
        guard let timeout = answer.timeoutS else { return "the gateway is shutting down" }
        return "the gateway is shutting down; requests in flight get up to \(AdminFormat.trimmed(timeout)) s"
    }

    /// `gateway suspend`: scope, state, whether it drained and what is still active.
    static func suspend(_ answer: AdminAnswer.Suspend) -> [String] {
        var lines = [
            "scope:   \(answer.scope)",
            "state:   \(answer.state)",
            "drained: \(answer.drained ? "yes" : "no")",
            "active:  \(answer.active)",
        ]
        if answer.cancelled == true { lines.append("cancelled: yes (resumed before the drain ended)") }
        return lines
    }

    /// Why a suspend answer is a failure (exit 1), or `nil` when it is not.
    static func suspendFailure(_ answer: AdminAnswer.Suspend) -> String? {
        if answer.cancelled == true {
            return "the suspend of \(answer.scope) was cancelled by a resume"
        }
        if !answer.drained {
            let noun = answer.active == 1 ? "request" : "requests"
            return "\(answer.scope) did not drain before the timeout: \(answer.active) \(noun) still in flight"
        }
        return nil
    }

    /// `gateway resume`: scope and the state change.
    static func resume(_ answer: AdminAnswer.Resume) -> [String] {
        ["scope: \(answer.scope)", "state: \(answer.previousState.map { "\($0) -> " } ?? "")\(answer.state)"]
    }

    /// `gateway stop|start`: the gateway's message and the instances it touched, as a table.
    static func instances(_ answer: AdminAnswer.Instances, width: Int?) -> [String] {
        var lines: [String] = []
        if let message = answer.message, !message.isEmpty { lines.append(message) }
        if let instances = answer.instances, !instances.isEmpty {
            lines += ProcessTable.render(instances, width: width)
        }
        return lines
    }
}

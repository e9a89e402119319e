import Supervisor

/// The supervisor's events in the words of `/events`: `instance` for a state change, `roll` for
/// the steps of a rolling restart.
enum SupervisorEvents {
    static func publish(_ event: SupervisorEvent, to log: GatewayEventLog) {
        switch event {
        case .instanceState(let deployment, let index, let pid, let from, let to, let reason):
            log.publish(
                "instance", "\(deployment)#\(index) \(from.rawValue) -> \(to.rawValue): \(reason)",
                [
                    "deployment": .string(deployment), "instance": .string("\(deployment)#\(index)"), "index": .int(index),
                    "pid": .optional(pid), "from": .string(from.rawValue), "to": .string(to.rawValue), "reason": .string(reason),
                ])
        case .rollStarted(let deployment, let instances):
            log.publish(
                "roll", "rolling restart of \(deployment) started (\(instances) instance\(instances == 1 ? "" : "s"))",
                ["deployment": .string(deployment), "step": .string("started"), "instances": .int(instances)])
        case .rollStep(let step):
            var message = "\(step.instance) replaced: pid \(step.oldPid.map(String.init) ?? "-") -> \(step.newPid.map(String.init) ?? "-")"
            if let error = step.error { message = "\(step.instance) not replaced: \(error)" }
            log.publish(
                "roll", message,
                [
                    "deployment": .string(String(step.instance.split(separator: "#").first ?? "")), "step": .string("instance"),
                    "instance": .string(step.instance), "old_pid": .optional(step.oldPid), "new_pid": .optional(step.newPid),
                    "drained": .bool(step.drained), "error": .optional(step.error),
                ])
        case .rollFinished(let deployment, let ok, let message):
            log.publish(
                "roll", "rolling restart of \(deployment) \(ok ? "finished" : "failed"): \(message)",
                ["deployment": .string(deployment), "step": .string(ok ? "finished" : "failed"), "ok": .bool(ok)])
        }
    }
}

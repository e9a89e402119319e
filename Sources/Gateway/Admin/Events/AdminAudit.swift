import Foundation

/// The audit trail of the admin API: every state-changing call (allowed or refused) becomes one
/// JSON line in the gateway's log and an `audit` event on `/events`. Who (user name or local
/// user), from where, what with which parameters, the result and how long it took.
struct AdminAudit: Sendable {
    let events: GatewayEventLog
    /// Where the line goes: the gateway's stderr, beside its other log lines.
    var write: @Sendable (String) -> Void = { line in FileHandle.standardError.write(Data((line + "\n").utf8)) }

    func record(
        principal: AdminPrincipal?, request: AdminRequest, response: AdminResponse, duration: Duration, at time: Date = Date()
    ) {
        let result = (200..<400).contains(response.status) ? "ok" : (Self.errorMessage(response) ?? "HTTP \(response.status)")
        var params: [String: EventValue] = [:]
        // A token sent in a query by mistake must not end up in the log.
        for (name, value) in request.query { params[name] = .string(name.lowercased().contains("token") ? "[redacted]" : value) }
        let user = principal?.name ?? "-"
        let fields: [String: EventValue] = [
            "user": .string(user),
            "level": .optional(principal?.level.rawValue),
            "credential": .optional(principal?.credential.rawValue),
            "from": .string(request.peer.description),
            "method": .string(request.method),
            "path": .string(request.path),
            "params": .object(params),
            "status": .int(response.status),
            "result": .string(result),
            "duration_ms": .double(((Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15) * 10).rounded() / 10),
        ]
        var line = fields
        line["time"] = .string(GatewayEvent.timestamp(time))
        let json = String(decoding: AdminJSONEncoding.encode(["audit": EventValue.object(line)], pretty: false), as: UTF8.self)
        write(json)
        let query = params.isEmpty ? "" : "?" + params.keys.sorted().map { name in
            if case .string(let value) = params[name] { return "\(name)=\(value)" }
            return name
        }.joined(separator: "&")
        events.publish("audit", "\(user): \(request.method) \(request.path)\(query) -> \(response.status) \(result)", fields)
    }

    private static func errorMessage(_ response: AdminResponse) -> String? {
        guard response.contentType.hasPrefix("application/json"),
            let object = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
        else { return nil }
        return object["error"] as? String
    }
}

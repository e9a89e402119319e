import Foundation
import Supervisor

/// `GET /deployments/D/instances/N/logs`: an instance's last output lines, kept in memory by
/// whoever reads its pipes (the keeper under `gateway run`).
extension AdminAPI {
    /// Lines answered when `lines` is not given.
    static let defaultLogLines = 100
    /// The most lines one answer has (what the ring keeps).
    static let maxLogLines = OutputRing.defaultCapacity
    /// The longest long poll (`wait`), in seconds: well inside any proxy's or client's timeout.
    static let maxLogWaitSeconds = 60.0

    func logs(_ request: AdminRequest, deployment: String, index: Int?) async -> AdminResponse {
        guard let index else {
            return .error(
                404, "no admin endpoint \(request.path); output is kept per instance: /deployments/\(deployment)/instances/N/logs")
        }
        guard request.method == "GET" else { return .error(405, "method \(request.method) not allowed on \(request.path); use GET") }
        let query: OutputQuery
        switch Self.logQuery(request.query, instance: "\(deployment)#\(index)") {
        case .success(let parsed): query = parsed
        case .failure(let error): return .error(400, error.message)
        }
        guard let operations else { return .error(409, "the gateway supervises no processes") }
        let config = await operations.membership.config
        guard let configured = config.deployments.first(where: { $0.name == deployment }) else {
            return .error(404, "no deployment '\(deployment)'")
        }
        guard configured.process != nil else {
            return .error(409, "deployment '\(deployment)' has fixed backends; the gateway does not run its processes")
        }
        let indices = await operations.supervisor.indices(of: deployment) ?? []
        guard indices.contains(index) else {
            return .error(404, "deployment '\(deployment)' has no instance #\(index) (it has \(indices.count))")
        }
        guard let output = operations.output else { return .error(409, "this gateway keeps no instance output") }
        switch await output.read(query) {
        case .success(let page):
            return .json(200, LogsAnswer(instance: query.instance, page: page))
        case .failure(let error):
            return .error(503, "cannot read the output of \(query.instance): \(error.message)")
        }
    }

    /// `lines` (1 to 1000, default 100), `after` (a sequence number), `wait` (seconds, 0 to 60;
    /// only with `after`).
    static func logQuery(_ parameters: [String: String], instance: String) -> Result<OutputQuery, ParameterError> {
        let known = ["after", "lines", "wait"]
        if let unknown = parameters.keys.sorted().first(where: { !known.contains($0) }) {
            return .failure(ParameterError(message: "unknown parameter '\(unknown)'; expected one of \(known.joined(separator: ", "))"))
        }
        var query = OutputQuery(instance: instance, lines: defaultLogLines)
        if let raw = parameters["lines"] {
            guard let lines = Int(raw), (1...maxLogLines).contains(lines) else {
                return .failure(ParameterError(message: "lines must be a number from 1 to \(maxLogLines), got '\(raw)'"))
            }
            query.lines = lines
        }
        if let raw = parameters["after"] {
            guard let after = Int(raw), after >= 0 else {
                return .failure(ParameterError(message: "after must be a sequence number (0 or more), got '\(raw)'"))
            }
            query.after = after
        }
        if let raw = parameters["wait"] {
            guard let seconds = Double(raw), seconds >= 0, seconds <= maxLogWaitSeconds else {
                return .failure(ParameterError(message: "wait must be a number of seconds from 0 to \(Int(maxLogWaitSeconds)), got '\(raw)'"))
            }
            guard query.after != nil else {
                return .failure(ParameterError(message: "wait needs after (the last sequence number already seen)"))
            }
            query.waitMilliseconds = Int((seconds * 1000).rounded())
        }
        return .success(query)
    }
}

/// The answer of `GET /deployments/D/instances/N/logs`.
struct LogsAnswer: Encodable {
    var instance: String
    var page: OutputPage

    struct Line: Encodable {
        var line: OutputRing.Line

        enum Keys: String, CodingKey {
            case sequence, time, stream, pid, text
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: Keys.self)
            try c.encode(line.sequence, forKey: .sequence)
            try c.encode((line.time * 1000).rounded() / 1000, forKey: .time)
            try c.encode(line.stream.rawValue, forKey: .stream)
            try c.encode(line.pid, forKey: .pid)
            try c.encode(line.text, forKey: .text)
        }
    }

    enum Keys: String, CodingKey {
        case instance, lines, gap
        case lastSequence = "last_sequence"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(instance, forKey: .instance)
        try c.encode(page.lines.map(Line.init), forKey: .lines)
        try c.encode(page.lastSequence, forKey: .lastSequence)
        try c.encode(page.gap, forKey: .gap)
    }
}

import ArgumentParser
import Foundation
import Synchronization

/// `gateway events`: what happens in the gateway, one line each, as it happens (instance
/// states, suspends, rolls, reloads, upgrades, audit entries).
struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "Print the gateway's events as they happen (instance states, suspends, rolls, reloads, upgrades, audit).",
        discussion: """
            GET /events (server-sent events). First the events the gateway kept (the last 200), \
            then each new one until Ctrl-C or until the gateway closes the stream (a shutdown; after \
            an upgrade, run it again to follow the new worker). Needs level viewer.

            \(AdminExitCode.discussion)
            """
    )

    @OptionGroup var connection: AdminConnectionOptions

    @Flag(name: .long, help: "Print each event's JSON instead of a line of text.")
    var json = false

    @Option(name: .long, help: "Print only the last N kept events before following (default: all kept).")
    var last: Int?

    func validate() throws {
        if let last, last < 0 { throw ValidationError("--last must not be negative") }
    }

    func run() async throws {
        let json = self.json
        let last = self.last
        try await AdminCommandRunner.run {
            let client = try self.connection.client()
            let parser = Mutex(ServerSentEvents())
            let response = try await client.stream("/events", query: [("state", "0")]) { bytes in
                let messages = parser.withLock { $0.feed(bytes) }
                for message in messages {
                    let lines = Self.lines(for: message, json: json, last: last)
                    if !lines.isEmpty { AdminOutput.raw(Array(lines.joined(separator: "\n").utf8)) }
                }
            }
            try response.requireSuccess()
        }
    }

    /// What to print for one message: the kept events of the snapshot, or the event itself.
    static func lines(for message: ServerSentEvents.Message, json: Bool, last: Int?) -> [String] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(message.data.utf8)) as? [String: Any] else { return [] }
        var events: [[String: Any]]
        switch message.event {
        case "snapshot":
            events = object["recent"] as? [[String: Any]] ?? []
            if let last { events = Array(events.suffix(last)) }
        case "state":
            return []
        default:
            events = [object]
        }
        return events.map { event in
            if json,
                let data = try? JSONSerialization.data(withJSONObject: event, options: [.sortedKeys, .withoutEscapingSlashes])
            {
                return String(decoding: data, as: UTF8.self)
            }
            let time = event["time"] as? String ?? "-"
            let type = event["type"] as? String ?? "-"
            let text = event["message"] as? String ?? ""
            return "\(time) \(type.padding(toLength: 8, withPad: " ", startingAt: 0)) \(text)"
        }
    }
}

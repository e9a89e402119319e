/// How `gateway logs` prints the lines of one or more instances: pure, so it is unit-tested.
enum InstanceLogLines {
    /// The lines of several instances, oldest first (by the time the gateway read them, then by
    /// instance and sequence), each prefixed `[shop#2] ` when `prefixed`.
    static func merged(_ pages: [AdminAnswer.Logs], prefixed: Bool) -> [String] {
        let all = pages.flatMap { page in page.lines.map { (instance: page.instance, line: $0) } }
        let sorted = all.sorted { a, b in
            let (ta, tb) = (a.line.time ?? 0, b.line.time ?? 0)
            if ta != tb { return ta < tb }
            if a.instance != b.instance { return a.instance < b.instance }
            return a.line.sequence < b.line.sequence
        }
        return sorted.map { format($0.line, instance: $0.instance, prefixed: prefixed) }
    }

    static func format(_ line: AdminAnswer.LogLine, instance: String, prefixed: Bool) -> String {
        prefixed ? "[\(instance)] \(line.text)" : line.text
    }

    /// The `after` of the next poll, from an answer: its `last_sequence`.
    static func next(after page: AdminAnswer.Logs) -> Int {
        page.lastSequence
    }
}

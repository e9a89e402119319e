import Foundation

/// The `gateway status` table, in the manner of `pm2 ls`: one row per instance, aligned
/// columns, `-` for what the gateway reported as unknown.
///
/// Rendering is a pure function of the decoded `/processes` document and the terminal width,
/// so the exact output is unit-tested.
enum ProcessTable {
    /// What `gateway status` prints when the gateway runs no processes of its own (every
    /// deployment has external backends, or none at all).
    static let emptyMessage = "the gateway supervises no processes"

    /// Columns are separated by this.
    static let gap = "  "

    /// The REASON column is only shown when at least this many characters of it fit.
    static let minimumReasonWidth = 16

    private struct Column: Sendable {
        var title: String
        var rightAligned: Bool
        var value: @Sendable (AdminAnswer.Process) -> String
    }

    private static let columns: [Column] = [
        Column(title: "NAME", rightAligned: false) { $0.instance },
        Column(title: "PID", rightAligned: true) { AdminFormat.number($0.pid) },
        Column(title: "PORT", rightAligned: true) { AdminFormat.number($0.port) },
        Column(title: "STATE", rightAligned: false) { $0.state ?? AdminFormat.missing },
        Column(title: "READY", rightAligned: false) { AdminFormat.yesNo($0.ready) },
        Column(title: "ACTIVE", rightAligned: true) { AdminFormat.number($0.active) },
        Column(title: "REQUESTS", rightAligned: true) { AdminFormat.number($0.total) },
        Column(title: "CRASHES", rightAligned: true) { AdminFormat.number($0.crashes) },
        Column(title: "PLANNED", rightAligned: true) { AdminFormat.number($0.plannedRestarts) },
        Column(title: "UPTIME", rightAligned: true) { AdminFormat.uptime(seconds: $0.uptimeS) },
        Column(title: "MEMORY", rightAligned: true) { AdminFormat.bytes($0.rssBytes) },
        Column(title: "CPU", rightAligned: true) { AdminFormat.percent($0.cpuPercent) },
    ]

    /// The last column: why the instance is in its state and, once it has exited before, how.
    static let reasonTitle = "REASON / LAST EXIT"

    /// The REASON / LAST EXIT cell: `reason`, `last exit: ...`, both joined by `; `, or `-`.
    static func reason(of process: AdminAnswer.Process) -> String {
        var parts: [String] = []
        if let reason = process.reason, !reason.isEmpty { parts.append(reason) }
        if let lastExit = process.lastExit, !lastExit.isEmpty { parts.append("last exit: \(lastExit)") }
        return parts.isEmpty ? AdminFormat.missing : parts.joined(separator: "; ")
    }

    /// The table's lines, header first, without trailing spaces; `[emptyMessage]` when there are
    /// no processes.
    ///
    /// - Parameter width: the terminal's width; `nil` (not a terminal) shows everything. The
    ///   REASON / LAST EXIT column is cut to fit with `...`, and left out when not even
    ///   `minimumReasonWidth` characters of it would fit.
    static func render(_ processes: [AdminAnswer.Process], width: Int? = nil) -> [String] {
        guard !processes.isEmpty else { return [Self.emptyMessage] }
        let cells = processes.map { process in Self.columns.map { $0.value(process) } }
        let widths = Self.columns.indices.map { index in
            cells.reduce(Self.columns[index].title.count) { max($0, $1[index].count) }
        }
        func line(_ values: [String], reason: String?) -> String {
            var fields = zip(values, Self.columns.indices).map { value, index in
                Self.pad(value, to: widths[index], right: Self.columns[index].rightAligned)
            }
            if let reason { fields.append(reason) }
            var text = fields.joined(separator: Self.gap)
            while text.hasSuffix(" ") { text.removeLast() }
            return text
        }

        let fixedWidth = widths.reduce(0, +) + Self.gap.count * (widths.count - 1)
        let reasons = processes.map(Self.reason(of:))
        var reasonWidth: Int? = reasons.reduce(Self.reasonTitle.count) { max($0, $1.count) }
        if let width {
            let room = width - fixedWidth - Self.gap.count
            if room < Self.minimumReasonWidth {
                reasonWidth = nil
            } else {
                reasonWidth = min(reasonWidth!, room)
            }
        }
        let header = line(Self.columns.map(\.title), reason: reasonWidth.map { Self.cut(Self.reasonTitle, to: $0) })
        let rows = zip(cells, reasons).map { values, reason in
            line(values, reason: reasonWidth.map { Self.cut(reason, to: $0) })
        }
        return [header] + rows + commands(processes, width: width)
    }

    /// Below the table, the command each running instance executes (`$PORT` expanded), cut to
    /// the terminal's width: a blank line, `COMMAND`, then `shop#1  gunicorn -b 127.0.0.1:9101`.
    /// Nothing when no instance has one (stopped, or an older gateway).
    static func commands(_ processes: [AdminAnswer.Process], width: Int?) -> [String] {
        let running = processes.compactMap { process in process.command.map { (process.instance, $0) } }
        guard !running.isEmpty else { return [] }
        let nameWidth = running.reduce("NAME".count) { max($0, $1.0.count) }
        let lines = running.map { name, command in
            Self.pad(name, to: nameWidth, right: false) + Self.gap + command.map(Self.shellQuoted).joined(separator: " ")
        }
        return ["", Self.pad("NAME", to: nameWidth, right: false) + Self.gap + "COMMAND"]
            + lines.map { line in width.map { Self.cut(line, to: $0) } ?? line }
    }

    /// `word` as a shell would need it to come out as one argument.
    static func shellQuoted(_ word: String) -> String {
        let plain = !word.isEmpty && word.unicodeScalars.allSatisfy { scalar in
            scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || "-_./:=@%+,#".unicodeScalars.contains(scalar)
        }
        return plain ? word : "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    private static func pad(_ text: String, to width: Int, right: Bool) -> String {
        let padding = String(repeating: " ", count: max(0, width - text.count))
        return right ? padding + text : text + padding
    }

    /// `text` cut to `width` characters, the cut marked with `...`.
    static func cut(_ text: String, to width: Int) -> String {
        guard text.count > width else { return text }
        guard width > 3 else { return String(text.prefix(width)) }
        return text.prefix(width - 3) + "..."
    }
}

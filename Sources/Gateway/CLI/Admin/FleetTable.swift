import Foundation

/// `gateway status --fleet`: the answer of `GET /fleet` as two tables, gateways and backends.
enum FleetTable {
    /// The answer as the server encodes it (snake_case property names, so no key conversion).
    static let decoder = JSONDecoder()

    static func render(_ fleet: FleetDirectory.Document) -> [String] {
        var lines = ["fleet \(fleet.prefix) at etcd revision \(fleet.revision)", ""]
        if fleet.gateways.isEmpty {
            lines.append("no gateway reports (none running with this prefix, or their leases expired)")
        } else {
            lines += table(
                ["GATEWAY", "REVISION", "ROUTES", "LETTING GO"],
                fleet.gateways.map { gateway in
                    [
                        gateway.id + (gateway.this ? " (this)" : ""), String(gateway.revision), String(gateway.routes.count),
                        gateway.letting_go.isEmpty ? "-" : gateway.letting_go.map { "\($0.backend): \($0.in_flight) in flight" }.joined(separator: ", "),
                    ]
                })
        }
        lines.append("")
        if fleet.backends.isEmpty {
            lines.append("no registered backends")
        } else {
            lines += table(
                ["DEPLOYMENT", "ADDRESS", "STATE", "WEIGHT", "IN FLIGHT", "ROUTED BY"],
                fleet.backends.map { backend in
                    [
                        backend.deployment, backend.address, backend.state, String(backend.weight), String(backend.in_flight),
                        backend.routed_by.isEmpty ? "-" : backend.routed_by.joined(separator: ", "),
                    ]
                })
        }
        for problem in fleet.problems { lines.append("ignored: \(problem)") }
        return lines
    }

    private static func table(_ titles: [String], _ rows: [[String]]) -> [String] {
        let widths = titles.indices.map { index in rows.reduce(titles[index].count) { max($0, $1[index].count) } }
        return ([titles] + rows).map { row in
            var text = zip(row, widths).map { $0 + String(repeating: " ", count: $1 - $0.count) }.joined(separator: "  ")
            while text.hasSuffix(" ") { text.removeLast() }
            return text
        }
    }
}

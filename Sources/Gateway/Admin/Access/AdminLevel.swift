/// What an admin user may do. Each level includes the ones below it.
///
/// - `viewer`: read (stats, metrics, processes, events, logs, the status page);
/// - `operator`: also suspend, resume, start, stop, restart and reload;
/// - `admin`: also shut the gateway down and upgrade it.
enum AdminLevel: String, Sendable, Comparable, CaseIterable, Codable {
    case viewer
    case `operator`
    case admin

    private var rank: Int {
        switch self {
        case .viewer: 0
        case .operator: 1
        case .admin: 2
        }
    }

    static func < (lhs: AdminLevel, rhs: AdminLevel) -> Bool { lhs.rank < rhs.rank }

    /// `viewer, operator, admin`, for messages.
    static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }
}

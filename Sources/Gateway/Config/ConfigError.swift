/// A configuration problem, located so the operator can go straight to it:
/// `gateway.yaml:14:22: deployments[0].entry_points[1].max_requests: expected a positive integer, got "abc"`.
struct ConfigError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The file (or the name a string was given under).
    var source: String
    /// 1-based line and column of the offending node; `nil` when the problem is not in the text
    /// (an unreadable file).
    var line: Int?
    var column: Int?
    /// Where in the document: `deployments[0].backends[1]`; empty for the document itself.
    var keyPath: String
    var message: String

    init(source: String, line: Int? = nil, column: Int? = nil, keyPath: String = "", message: String) {
        self.source = source
        self.line = line
        self.column = column
        self.keyPath = keyPath
        self.message = message
    }

    var description: String {
        var location = self.source
        if let line = self.line {
            location += ":\(line)"
            if let column = self.column { location += ":\(column)" }
        }
        return self.keyPath.isEmpty
            ? "\(location): \(self.message)"
            : "\(location): \(self.keyPath): \(self.message)"
    }
}

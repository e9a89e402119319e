import Yams

/// A YAML node together with where it is (key path and file position), so that every value the
/// loader reads can fail with an error that points at it.
struct ConfigNode {
    let node: Node
    /// `deployments[0].backends[1]`; empty for the document root.
    let keyPath: String
    let source: String

    func error(_ message: String) -> ConfigError {
        ConfigError(
            source: self.source,
            line: self.node.mark?.line,
            column: self.node.mark?.column,
            keyPath: self.keyPath,
            message: message
        )
    }

    /// `null`, `~` or nothing at all after the colon.
    var isNull: Bool {
        guard case .scalar(let scalar) = self.node, scalar.style == .plain || scalar.style == .any else {
            return false
        }
        return ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }

    /// How the node reads in an error message: `"abc"`, `a list`, `a mapping`, `null`.
    var shown: String {
        switch self.node {
        case .scalar where self.isNull: return "null"
        case .scalar(let scalar): return Self.quoted(scalar.string)
        case .sequence: return "a list"
        case .mapping: return "a mapping"
        case .alias: return "an alias"
        }
    }

    static func quoted(_ text: String) -> String {
        var result = "\""
        for character in text {
            switch character {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\t": result += "\\t"
            default: result.append(character)
            }
        }
        return result + "\""
    }

    // MARK: Shapes

    /// The node as a mapping whose keys must all be in `known` (an unknown key is an error that
    /// names it and suggests the closest known key).
    func mapping(known: [String]) throws(ConfigError) -> ConfigMapping {
        guard case .mapping(let mapping) = self.node else {
            throw self.error("expected a mapping, got \(self.shown)")
        }
        var entries: [String: ConfigNode] = [:]
        for (keyNode, valueNode) in mapping {
            let keyAt = ConfigNode(node: keyNode, keyPath: self.keyPath, source: self.source)
            guard case .scalar(let keyScalar) = keyNode else {
                throw keyAt.error("keys must be plain names, got \(keyAt.shown)")
            }
            let key = keyScalar.string
            guard known.contains(key) else {
                let place = ConfigNode(node: keyNode, keyPath: self.child(key), source: self.source)
                var message = "unknown key \(Self.quoted(key))"
                if let suggestion = ClosestKey.find(key, among: known) {
                    message += "; did you mean \(Self.quoted(suggestion))?"
                } else {
                    message += " (known keys: \(known.joined(separator: ", ")))"
                }
                throw place.error(message)
            }
            entries[key] = ConfigNode(node: valueNode, keyPath: self.child(key), source: self.source)
        }
        return ConfigMapping(node: self, entries: entries)
    }

    /// The node as a list.
    func list() throws(ConfigError) -> [ConfigNode] {
        guard case .sequence(let sequence) = self.node else {
            throw self.error("expected a list, got \(self.shown)")
        }
        return sequence.enumerated().map { index, element in
            ConfigNode(node: element, keyPath: "\(self.keyPath)[\(index)]", source: self.source)
        }
    }

    /// The node as text (any scalar that is not null).
    func string(expected: String = "a string") throws(ConfigError) -> String {
        guard case .scalar(let scalar) = self.node, !self.isNull else {
            throw self.error("expected \(expected), got \(self.shown)")
        }
        return scalar.string
    }

    // MARK: Values

    /// `true` or `false` (YAML 1.2's core schema: not `yes`/`no`, which read as strings).
    func bool() throws(ConfigError) -> Bool {
        let text = try self.string(expected: "true or false")
        switch text {
        case "true", "True", "TRUE": return true
        case "false", "False", "FALSE": return false
        default: throw self.error("expected true or false, got \(self.shown)")
        }
    }

    /// A whole number from 1 to `max`; `why` (such as "2^31-1") follows the maximum in the error.
    func positiveInt(max: Int, why: String? = nil) throws(ConfigError) -> Int {
        try integer(min: 1, max: max, why: why)
    }

    /// A whole number from 0 to `max`.
    func nonNegativeInt(max: Int) throws(ConfigError) -> Int {
        try integer(min: 0, max: max, why: nil)
    }

    private func integer(min: Int, max: Int, why: String?) throws(ConfigError) -> Int {
        let expected = min > 0 ? "a positive integer" : "a whole number of at least \(min)"
        let text = try self.string(expected: expected)
        let digits = text.replacingUnderscores()
        let tooLarge = "must be at most \(max)\(why.map { " (\($0))" } ?? ""), got \(self.shown)"
        guard let value = Int(digits) else {
            // All digits, only too many for an Int: say what the limit is, not that it is no number.
            if !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) { throw self.error(tooLarge) }
            throw self.error("expected \(expected), got \(self.shown)")
        }
        guard value >= min else { throw self.error("expected \(expected), got \(self.shown)") }
        guard value <= max else { throw self.error(tooLarge) }
        return value
    }

    /// A duration (`500ms`, `30s`, `1.5s`, `2m`, `1h`, or a bare number of seconds), at most
    /// `ConfigBounds.maxDuration`.
    func duration(allowZero: Bool) throws(ConfigError) -> Duration {
        let text = try self.string(expected: "a duration")
        let value: Duration
        switch DurationParser.parse(text) {
        case .success(let parsed): value = parsed
        case .failure(let problem): throw self.error("\(problem.message), got \(self.shown)")
        }
        if !allowZero && value == .zero {
            throw self.error("must be greater than zero, got \(self.shown)")
        }
        return value
    }

    /// A `host:port` address (`127.0.0.1:8080`, `[::1]:8080`, `localhost:8080`); port 0 only
    /// for listeners (`allowAnyPort`).
    func hostPort(allowAnyPort: Bool = false) throws(ConfigError) -> HostPort {
        let text = try self.string(expected: "an address host:port")
        switch HostPort.parse(text, allowAnyPort: allowAnyPort) {
        case .success(let address): return address
        case .failure(let problem): throw self.error("\(problem.message), got \(self.shown)")
        }
    }

    private func child(_ key: String) -> String {
        self.keyPath.isEmpty ? key : "\(self.keyPath).\(key)"
    }
}

extension String {
    /// YAML 1.1 allows `1_000`; so do we, for readable limits.
    fileprivate func replacingUnderscores() -> String {
        String(self.filter { $0 != "_" })
    }
}

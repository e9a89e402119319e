/// The entries of a YAML mapping whose keys have been checked, looked up by key.
struct ConfigMapping {
    /// The mapping itself, for errors about it as a whole (a missing key).
    let node: ConfigNode
    let entries: [String: ConfigNode]

    /// The value under `key`; `nil` when the key is absent or explicitly null.
    func optional(_ key: String) -> ConfigNode? {
        guard let value = self.entries[key], !value.isNull else { return nil }
        return value
    }

    /// The value under `key`, which must be present and not null.
    func required(_ key: String) throws(ConfigError) -> ConfigNode {
        guard let value = self.optional(key) else {
            throw self.node.error("missing required key \(ConfigNode.quoted(key))")
        }
        return value
    }
}

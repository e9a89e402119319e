import Foundation

/// The key layout and value format of registered backends, written once for the gateway that
/// reads them and the agent that writes them.
///
/// Key: `PREFIX` + `deployments/` + deployment + `/backends/` + `HOST:PORT`.
/// Value: JSON `{"state": "serving", "weight": 2}` (weight optional, default 1), or a bare state
/// word (`serving`), which is what an operator types with `etcdctl put`.
public enum MemberRecord {
    /// Why a key under the prefix is not taken as a member; logged with the key.
    public struct Problem: Error, Sendable, Equatable, CustomStringConvertible {
        public var key: String
        public var reason: String
        public var description: String { "\(key): \(reason)" }
    }

    /// The key of a member under `prefix` (which ends in `/`).
    public static func key(prefix: String, deployment: String, address: String) -> String {
        "\(prefix)deployments/\(deployment)/backends/\(address)"
    }

    /// The prefix every member key of the fleet starts with.
    public static func membersPrefix(_ prefix: String) -> String { "\(prefix)deployments/" }

    /// The deployment and address of a member key; nil for keys under the prefix that are not
    /// member keys (other data of the fleet lives there too).
    public static func id(key: String, prefix: String) -> MemberID? {
        guard key.hasPrefix(membersPrefix(prefix)) else { return nil }
        let rest = key.dropFirst(membersPrefix(prefix).count)
        let parts = rest.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[1] == "backends", !parts[0].isEmpty, !parts[2].isEmpty else { return nil }
        return MemberID(deployment: String(parts[0]), address: String(parts[2]))
    }

    /// The value a member's key holds.
    public static func value(state: MemberState, weight: Int = 1) -> String {
        weight == 1 ? #"{"state":"\#(state.rawValue)"}"# : #"{"state":"\#(state.rawValue)","weight":\#(weight)}"#
    }

    private struct Value: Decodable {
        var state: String
        var weight: Int?
    }

    /// A member from one key-value pair, or the reason it is not one.
    public static func member(
        key: String, value: [UInt8], prefix: String, modRevision: Int64, lease: Int64
    ) -> Result<Member, Problem>? {
        guard let id = id(key: key, prefix: prefix) else { return nil }
        func problem(_ reason: String) -> Result<Member, Problem> { .failure(Problem(key: key, reason: reason)) }
        let text = String(decoding: value, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let stateWord: String
        var weight = 1
        if text.hasPrefix("{") {
            guard let decoded = try? JSONDecoder().decode(Value.self, from: Data(text.utf8)) else {
                return problem("the value is not {\"state\": ..., \"weight\": ...}: \(text.prefix(80))")
            }
            stateWord = decoded.state
            if let w = decoded.weight {
                guard (1...1000).contains(w) else { return problem("weight \(w) is not from 1 to 1000") }
                weight = w
            }
        } else {
            stateWord = text
        }
        guard let state = MemberState(rawValue: stateWord) else {
            return problem("unknown state \"\(stateWord.prefix(40))\"; expected starting, serving or draining")
        }
        guard Self.isAddress(id.address) else { return problem("\(id.address) is not HOST:PORT") }
        return .success(Member(deployment: id.deployment, address: id.address, state: state, weight: weight, modRevision: modRevision, lease: lease))
    }

    /// HOST:PORT with a port from 1 to 65535 (an IPv6 host in brackets).
    static func isAddress(_ text: String) -> Bool {
        guard let colon = text.lastIndex(of: ":") else { return false }
        let host = text[..<colon]
        guard let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port), !host.isEmpty else { return false }
        if host.contains(":") { return host.hasPrefix("[") && host.hasSuffix("]") }
        return true
    }
}

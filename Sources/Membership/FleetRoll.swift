import Foundation

/// A fleet-wide roll of one deployment through etcd (roadmap step 8): one request key, a status
/// key per gateway under its lease, and `maxUnavailable` slot keys that a gateway must hold while
/// it rolls its own instances. A gateway that dies loses its slot and its status with its lease,
/// so the roll goes on with the next host.
///
/// Keys under `PREFIX/rolls/DEPLOYMENT/`: `request`, `status/GATEWAY`, `slots/N`.
public enum FleetRoll {
    public struct Request: Sendable, Equatable, Codable {
        public var id: String
        public var maxUnavailable: Int

        public init(id: String, maxUnavailable: Int) {
            self.id = id
            self.maxUnavailable = maxUnavailable
        }

        enum CodingKeys: String, CodingKey {
            case id
            case maxUnavailable = "max_unavailable"
        }
    }

    public enum State: String, Sendable, Equatable, Codable {
        /// Seen, waiting for a slot.
        case waiting
        /// Holds a slot and rolls its instances.
        case rolling
        case done
        /// Its roll stopped (an instance did not get ready); the old instances serve.
        case failed
        /// Does not run this deployment's instances.
        case skipped

        public var isFinal: Bool { self == .done || self == .failed || self == .skipped }
    }

    public struct Status: Sendable, Equatable, Codable {
        public var id: String
        public var gateway: String
        public var state: State
        public var detail: String?

        public init(id: String, gateway: String, state: State, detail: String? = nil) {
            self.id = id
            self.gateway = gateway
            self.state = state
            self.detail = detail
        }
    }

    public static func rollsPrefix(_ prefix: String) -> String { "\(prefix)rolls/" }
    public static func requestKey(prefix: String, deployment: String) -> String { "\(prefix)rolls/\(deployment)/request" }
    public static func statusKey(prefix: String, deployment: String, gateway: String) -> String {
        "\(prefix)rolls/\(deployment)/status/\(gateway)"
    }
    public static func slotKey(prefix: String, deployment: String, slot: Int) -> String { "\(prefix)rolls/\(deployment)/slots/\(slot)" }

    /// The deployment a key under `rollsPrefix` belongs to and what is left of the key.
    public static func split(key: String, prefix: String) -> (deployment: String, rest: String)? {
        guard key.hasPrefix(rollsPrefix(prefix)) else { return nil }
        let tail = key.dropFirst(rollsPrefix(prefix).count)
        guard let slash = tail.firstIndex(of: "/") else { return nil }
        return (String(tail[..<slash]), String(tail[tail.index(after: slash)...]))
    }

    public static func encode<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return (try? String(decoding: encoder.encode(value), as: UTF8.self)) ?? "{}"
    }

    public static func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8]) -> T? {
        try? JSONDecoder().decode(type, from: Data(bytes))
    }

    /// Where one roll stands, for whoever asked for it.
    public struct Progress: Sendable, Equatable {
        /// Gateways alive when asked and not yet at a final state of this roll.
        public var pending: [String]
        /// Gateways that took part and vanished (their lease expired) before finishing.
        public var lost: [String]
        public var statuses: [String: Status]
        public var finished: Bool { pending.isEmpty }

        /// - Parameters:
        ///   - participants: the gateways alive when the roll was asked for.
        ///   - live: the gateways alive now (their reports exist).
        ///   - statuses: this roll's statuses as etcd has them now.
        public init(id: String, participants: Set<String>, live: Set<String>, statuses: [Status]) {
            var current: [String: Status] = [:]
            for status in statuses where status.id == id { current[status.gateway] = status }
            self.statuses = current
            var pending: [String] = []
            var lost: [String] = []
            for gateway in participants.sorted() {
                if let status = current[gateway], status.state.isFinal { continue }
                if live.contains(gateway) { pending.append(gateway) } else { lost.append(gateway) }
            }
            self.pending = pending
            self.lost = lost
        }
    }
}

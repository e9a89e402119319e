import Foundation

/// What one gateway tells the fleet about the registered backends it knows: which ones it routes
/// to, how many of its requests are still in flight at each one it stopped routing to, and the
/// revision its view of the members has reached. Written under the gateway's own lease at
/// `PREFIX/gateways/ID/routes`, so a gateway that dies drops out with its lease.
///
/// A drain is acknowledged by every live gateway when each one's view has reached the revision of
/// the `draining` write (it has seen it) and it neither routes to the backend nor has requests
/// in flight there (`DrainProgress`).
public struct GatewayReport: Sendable, Equatable, Codable {
    public struct Backend: Sendable, Equatable, Codable {
        /// In the gateway's rotation now.
        public var routed: Bool
        /// The gateway's requests at the backend now.
        public var inFlight: Int

        public init(routed: Bool, inFlight: Int) {
            self.routed = routed
            self.inFlight = inFlight
        }

        enum CodingKeys: String, CodingKey {
            case routed
            case inFlight = "in_flight"
        }
    }

    public var gateway: String
    /// The revision of the member writes the gateway has applied.
    public var revision: Int64
    /// By member (`DEPLOYMENT/HOST:PORT`): the ones routed to and the ones left with requests.
    public var backends: [String: Backend]

    public init(gateway: String, revision: Int64, backends: [String: Backend]) {
        self.gateway = gateway
        self.revision = revision
        self.backends = backends
    }

    public static func key(prefix: String, gateway: String) -> String { "\(prefix)gateways/\(gateway)/routes" }
    public static func reportsPrefix(_ prefix: String) -> String { "\(prefix)gateways/" }

    public func encoded() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return (try? String(decoding: encoder.encode(self), as: UTF8.self)) ?? "{}"
    }

    public static func decode(_ bytes: [UInt8]) -> GatewayReport? {
        try? JSONDecoder().decode(GatewayReport.self, from: Data(bytes))
    }

    /// The reports among keys read from etcd (other keys, and values that are not reports, are
    /// left out), in gateway order.
    public static func reports(in entries: [MembershipView.KeyValue], prefix: String) -> [GatewayReport] {
        entries.compactMap { entry in
            entry.key.hasPrefix(reportsPrefix(prefix)) && entry.key.hasSuffix("/routes") ? decode(entry.value) : nil
        }.sorted { $0.gateway < $1.gateway }
    }
}

/// Whether every live gateway has let go of a draining backend.
public struct DrainProgress: Sendable, Equatable {
    /// Gateways that have not seen the drain yet, or still route to the backend, or still have
    /// requests there: gateway id and why.
    public var waitingOn: [String: String]
    public var isDone: Bool { waitingOn.isEmpty }

    /// `reports`: every report under the prefix now (the gateways alive); `drainRevision`: the
    /// revision of the `draining` write.
    public init(member: MemberID, drainRevision: Int64, reports: [GatewayReport]) {
        var waiting: [String: String] = [:]
        for report in reports {
            if report.revision < drainRevision {
                waiting[report.gateway] = "has not seen revision \(drainRevision) yet (at \(report.revision))"
            } else if let backend = report.backends[member.description] {
                if backend.routed {
                    waiting[report.gateway] = "still routes to it"
                } else if backend.inFlight > 0 {
                    waiting[report.gateway] = "\(backend.inFlight) request(s) in flight"
                }
            }
        }
        waitingOn = waiting
    }
}

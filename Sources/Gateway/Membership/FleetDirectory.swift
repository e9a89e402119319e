import Foundation
import Membership

/// `GET /fleet` and `gateway status --fleet`: every gateway and registered backend of the fleet,
/// read from etcd at the moment of asking (not this gateway's view of it). The answers are
/// Codable: the server encodes them and the CLI decodes the same types.
struct FleetDirectory: Sendable {
    let client: EtcdClient
    let prefix: String
    /// This gateway's id, marked in the answer.
    let gatewayID: String

    struct Document: Codable, Sendable {
        struct Gateway: Codable, Sendable {
            var id: String
            var revision: Int64
            var this: Bool
            /// Registered backends it routes to.
            var routes: [String]
            /// Backends it stopped routing to, with its requests still in flight there.
            var letting_go: [LettingGo]
        }

        struct LettingGo: Codable, Sendable {
            var backend: String
            var in_flight: Int
        }

        struct Backend: Codable, Sendable {
            var deployment: String
            var address: String
            var state: String
            var weight: Int
            var lease: String
            var revision: Int64
            /// The gateways that route to it now.
            var routed_by: [String]
            /// Requests in flight at it, summed over the gateways' reports.
            var in_flight: Int
        }

        var prefix: String
        var revision: Int64
        var gateways: [Gateway]
        var backends: [Backend]
        /// Keys under the members' prefix that are not members (a value that cannot be read).
        var problems: [String]
    }

    func document() async throws -> Document {
        let read = try await client.range(prefix: prefix)
        var view = MembershipView(prefix: prefix)
        let outcome = view.resync(revision: read.revision, entries: read.entries)
        let reports = GatewayReport.reports(in: read.entries, prefix: prefix)
        let backends = view.members.values.sorted { $0.id < $1.id }.map { member in
            let key = member.id.description
            return Document.Backend(
                deployment: member.deployment, address: member.address, state: member.state.rawValue, weight: member.weight,
                lease: member.lease == 0 ? "none" : String(member.lease, radix: 16), revision: member.modRevision,
                routed_by: reports.filter { $0.backends[key]?.routed == true }.map(\.gateway),
                in_flight: reports.reduce(0) { $0 + ($1.backends[key]?.inFlight ?? 0) })
        }
        let gateways = reports.map { report in
            Document.Gateway(
                id: report.gateway, revision: report.revision, this: report.gateway == gatewayID,
                routes: report.backends.filter(\.value.routed).map(\.key).sorted(),
                letting_go: report.backends.filter { !$0.value.routed }.sorted { $0.key < $1.key }.map {
                    Document.LettingGo(backend: $0.key, in_flight: $0.value.inFlight)
                })
        }
        return Document(prefix: prefix, revision: read.revision, gateways: gateways, backends: backends, problems: outcome.problems.map(\.description))
    }

    // MARK: Fleet rolls

    struct RollAnswer: Codable, Sendable {
        struct Part: Codable, Sendable {
            var gateway: String
            var state: String
            var detail: String?
        }

        var ok: Bool
        var roll: String
        var deployment: String
        var max_unavailable: Int
        var gateways: [Part]
        /// Gateways that vanished (lease expired) before finishing their part.
        var lost: [String]
        /// Gateways still at it when the wait ended.
        var pending: [String]
    }

    /// Asks every gateway of the fleet to roll `deployment`, at most `maxUnavailable` at once, and
    /// waits (at most `timeout`) until each gateway alive at the start has done its part or is gone.
    func roll(deployment: String, maxUnavailable: Int, timeout: Duration) async throws -> RollAnswer {
        let participants = Set(try await liveGateways())
        let request = FleetRoll.Request(id: UUID().uuidString.lowercased(), maxUnavailable: maxUnavailable)
        try await client.put(key: FleetRoll.requestKey(prefix: prefix, deployment: deployment), value: FleetRoll.encode(request))
        let deadline = ContinuousClock.now + timeout
        var progress = FleetRoll.Progress(id: request.id, participants: participants, live: participants, statuses: [])
        while true {
            let read = try await client.range(prefix: FleetRoll.rollsPrefix(prefix))
            let statuses = read.entries.compactMap { entry -> FleetRoll.Status? in
                guard let (name, rest) = FleetRoll.split(key: entry.key, prefix: prefix), name == deployment, rest.hasPrefix("status/") else { return nil }
                return FleetRoll.decode(FleetRoll.Status.self, entry.value)
            }
            progress = FleetRoll.Progress(id: request.id, participants: participants, live: Set(try await liveGateways()), statuses: statuses)
            if progress.finished || ContinuousClock.now >= deadline { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        let parts = participants.sorted().map { gateway in
            let status = progress.statuses[gateway]
            return RollAnswer.Part(
                gateway: gateway, state: status?.state.rawValue ?? (progress.lost.contains(gateway) ? "lost" : "unseen"), detail: status?.detail)
        }
        let ok = progress.finished && progress.statuses.values.allSatisfy { $0.state != .failed }
        return RollAnswer(
            ok: ok, roll: request.id, deployment: deployment, max_unavailable: maxUnavailable, gateways: parts, lost: progress.lost,
            pending: progress.pending)
    }

    /// The gateways whose reports exist now (their leases are alive).
    private func liveGateways() async throws -> [String] {
        GatewayReport.reports(in: try await client.range(prefix: GatewayReport.reportsPrefix(prefix)).entries, prefix: prefix).map(\.gateway)
    }
}

import Logging
import Membership
import RequestControl
import Supervisor

/// Keeps the deployments' registered backends in step with etcd (roadmap step 8): reads the
/// prefix, watches from the read's revision, and hands `BackendMembership` the backends that may
/// take requests.
///
/// - `serving` joins the rotation once a TCP connect to it succeeds (checked again every second
///   until it does), and is checked every second while in it: 3 failures in a row take it out
///   until a connect succeeds again; `starting` never does.
/// - `draining`, a deleted key or an expired lease leave the rotation at once; requests already
///   routed to the backend finish there.
/// - etcd unreachable (at start or later): the last membership known keeps serving, never an
///   empty rotation because etcd blinked; reads and watches are retried every 0.2 s for the
///   first `quietOutage` (a lost member, a leader election), then with a backoff doubling to 5 s,
///   and an outage longer than that is logged once when it starts and once when it ends.
/// - A compaction past the watch, or a lost watch: the prefix is read again and only what
///   differs is applied (`MembershipView`).
/// - Its report (`GatewayReport`, under the gateway's lease): the registered backends it
///   routes to, and the ones it stopped routing to with its requests still in flight there, until
///   they reach 0; written at once after each membership change reached every loop, and when the
///   in-flight counts changed (looked at every `reportInterval`), so an agent draining a backend
///   can wait for every gateway to let go.
actor EtcdMembership {
    static let reportInterval: Duration = .milliseconds(200)
    /// An unchanged report is written again this often, so that it stays bound to this worker's
    /// lease (after an upgrade, a report the old worker wrote last would go with its lease).
    static let reportRefresh: Duration = .seconds(2)
    /// Between two checks of the members in rotation.
    static let checkInterval: Duration = .seconds(1)
    /// Failed checks in a row that take a member out of rotation.
    static let failuresToLeave = 3
    /// How long etcd may fail before it is logged as unreachable: longer than a leader election.
    static let quietOutage: Duration = .seconds(3)

    private let client: EtcdClient
    private let membership: BackendMembership
    private let controller: RequestController
    private let prober: HealthProber
    private let logger: Logger
    private let gatewayID: String
    private var view: MembershipView
    /// The counters of the registered backends in rotation, and of the ones that left it while
    /// requests were in flight there (kept until they reach 0: a counter a reconcile removed
    /// still counts the requests that hold it).
    private var counters: [MemberID: BackendCounter] = [:]
    private var lastReport: GatewayReport?
    /// The gateway's lease, and the grant the last report was written under.
    private let lease: EtcdLease
    private var reportGeneration = 0
    private var reportWrittenAt = ContinuousClock.now
    /// A new worker reports for this gateway now.
    private var reportingStopped = false
    /// The view's revision once every loop routes by it: what the report says the gateway has
    /// applied (a drain must not be acknowledged while a loop could still pick the backend).
    private var appliedRevision: Int64 = 0
    private var publishedWeights: [String: [HostPort: Int]] = [:]
    private var writingReport = false
    private var reportDirty = false
    /// Serving members whose connect check passed.
    private var checked: Set<MemberID> = []
    /// Serving members being checked now.
    private var checking: Set<MemberID> = []
    private var checks: [MemberID: Task<Void, Never>] = [:]
    /// Failed checks in a row of members in rotation.
    private var failedChecks: [MemberID: Int] = [:]

    init(
        config: MembershipConfig, gatewayID: String, client: EtcdClient, lease: EtcdLease, membership: BackendMembership,
        controller: RequestController, prober: HealthProber, logger: Logger
    ) {
        self.client = client
        self.lease = lease
        self.membership = membership
        self.controller = controller
        self.prober = prober
        self.logger = logger
        self.gatewayID = gatewayID
        self.view = MembershipView(prefix: config.prefix)
    }

    /// Until cancelled: the watch, and the report beside it.
    func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.follow() }
            group.addTask { await self.reportUntilCancelled() }
            group.addTask { await self.checkUntilCancelled() }
        }
    }

    private func follow() async {
        var backoff: Duration = .milliseconds(200)
        var unreachableSince: ContinuousClock.Instant?
        var failingSince: ContinuousClock.Instant?
        while !Task.isCancelled {
            do {
                let read = try await client.range(prefix: MemberRecord.membersPrefix(view.prefix))
                let outcome = view.resync(revision: read.revision, entries: read.entries)
                if let since = unreachableSince {
                    logger.info("etcd membership reachable again", metadata: [
                        "revision": "\(read.revision)", "after": "\(ContinuousClock.now - since)",
                    ])
                    unreachableSince = nil
                } else if outcome.changes.isEmpty, !outcome.stale {
                    logger.info("etcd membership read", metadata: ["revision": "\(read.revision)", "members": "\(view.members.count)"])
                }
                await handle(outcome)
                appliedRevision = view.revision
                backoff = .milliseconds(200)
                failingSince = nil
                for try await message in client.watch(prefix: MemberRecord.membersPrefix(view.prefix), fromRevision: view.revision + 1) {
                    switch message {
                    case .created:
                        continue
                    case .events(let events, let revision):
                        if events.isEmpty {
                            view.advance(to: revision)
                        } else {
                            await handle(view.apply(events))
                        }
                        appliedRevision = view.revision
                        await writeReport()
                    case .compacted(let revision):
                        logger.info("etcd compacted past the membership watch; reading again", metadata: ["compact_revision": "\(revision)"])
                    }
                }
            } catch {
                if Task.isCancelled { break }
                // A watch that ends because its member went away is read again at once from the
                // next member, and a cluster that lost its leader answers again once it elected
                // another (a second or two): neither is an outage worth a warning.
                let firstFailure = failingSince ?? .now
                failingSince = firstFailure
                if ContinuousClock.now - firstFailure < Self.quietOutage {
                    try? await Task.sleep(for: .milliseconds(200))
                    continue
                }
                if unreachableSince == nil {
                    unreachableSince = firstFailure
                    logger.warning("etcd membership unreachable; the last membership known keeps serving", metadata: [
                        "error": "\(error)", "members": "\(view.members.count)", "revision": "\(view.revision)",
                    ])
                }
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(5))
            }
        }
        for task in checks.values { task.cancel() }
    }

    private func handle(_ outcome: MembershipView.Outcome) async {
        for problem in outcome.problems {
            logger.warning("registered backend ignored", metadata: ["key": "\(problem.key)", "reason": "\(problem.reason)"])
        }
        for change in outcome.changes {
            switch change {
            case .joined(let member):
                logger.info("registered backend joined", metadata: Self.metadata(member))
            case .changed(let old, let member):
                var metadata = Self.metadata(member)
                metadata["was"] = "\(old.state.rawValue)"
                logger.info("registered backend changed", metadata: metadata)
            case .left(let member):
                logger.info("registered backend left", metadata: Self.metadata(member))
            }
        }
        guard !outcome.changes.isEmpty else { return }
        let serving = Set(view.members.values.filter { $0.state == .serving }.map(\.id))
        let before = checked
        let weightsBefore = publishedWeights
        checked.formIntersection(serving)
        for id in checks.keys where !serving.contains(id) {
            checks.removeValue(forKey: id)?.cancel()
            checking.remove(id)
        }
        for id in serving where !checked.contains(id) && !checking.contains(id) {
            startCheck(id)
        }
        if checked != before || rotationWeights() != weightsBefore { await publish() }
    }

    /// Members in rotation are checked (a TCP connect) every `checkInterval`; after
    /// `failuresToLeave` failures in a row one leaves the rotation, and joins again once a
    /// connect succeeds, as a new member does. Their lease may outlive a host that crashed.
    private func checkUntilCancelled() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: Self.checkInterval)
            let members = checked
            let prober = self.prober
            let results = await withTaskGroup(of: (MemberID, HealthProbeResult?).self) { group in
                for id in members {
                    group.addTask {
                        guard case .success(let address) = HostPort.parse(id.address) else { return (id, nil) }
                        let endpoint = InstanceEndpoint(deployment: id.deployment, index: 0, host: address.host, port: address.port, pid: 0)
                        return (id, await prober.probe(endpoint, check: HealthCheckSpec(kind: .tcp, timeout: .seconds(1))))
                    }
                }
                var all: [(MemberID, HealthProbeResult?)] = []
                for await result in group { all.append(result) }
                return all
            }
            var left = false
            for (id, result) in results where checked.contains(id) {
                guard case .failed(let why) = result else {
                    failedChecks[id] = nil
                    continue
                }
                failedChecks[id, default: 0] += 1
                guard failedChecks[id, default: 0] >= Self.failuresToLeave else { continue }
                failedChecks[id] = nil
                checked.remove(id)
                left = true
                logger.warning("registered backend failed its checks; out of rotation until one passes", metadata: [
                    "deployment": "\(id.deployment)", "address": "\(id.address)", "error": "\(why)",
                ])
                startCheck(id)
            }
            failedChecks = failedChecks.filter { checked.contains($0.key) }
            if left { await publish() }
        }
    }

    /// Connects to a serving member until it answers (once a second), then puts it in rotation.
    private func startCheck(_ id: MemberID) {
        checking.insert(id)
        let prober = self.prober
        checks[id] = Task {
            var reported = false
            while !Task.isCancelled {
                guard case .success(let address) = HostPort.parse(id.address) else { return }
                let endpoint = InstanceEndpoint(deployment: id.deployment, index: 0, host: address.host, port: address.port, pid: 0)
                let result = await prober.probe(endpoint, check: HealthCheckSpec(kind: .tcp, timeout: .seconds(1)))
                if case .failed(let why) = result {
                    if !reported {
                        self.logger.warning("registered backend not reachable; kept out of rotation", metadata: [
                            "deployment": "\(id.deployment)", "address": "\(id.address)", "error": "\(why)",
                        ])
                        reported = true
                    }
                    try? await Task.sleep(for: .seconds(1))
                    continue
                }
                await self.checkPassed(id)
                return
            }
        }
    }

    private func checkPassed(_ id: MemberID) async {
        guard checking.remove(id) != nil else { return }
        checks[id] = nil
        guard view.members[id]?.state == .serving else { return }
        checked.insert(id)
        logger.info("registered backend in rotation", metadata: ["deployment": "\(id.deployment)", "address": "\(id.address)"])
        await publish()
    }

    // MARK: Report

    private func reportUntilCancelled() async {
        while !Task.isCancelled {
            await writeReport()
            try? await Task.sleep(for: Self.reportInterval)
        }
    }

    /// Writes the report if it changed, or if the lease was granted anew (the report bound to the
    /// old one expires with it). Called on the report's rhythm (in-flight counts) and at once
    /// when a membership change has reached every loop, so a drain is acknowledged without
    /// waiting for the next tick. One write at a time: a call during a write makes the writer
    /// look again when it is done, so an older report never lands after a newer one.
    private func writeReport() async {
        guard !writingReport else {
            reportDirty = true
            return
        }
        writingReport = true
        defer { writingReport = false }
        repeat {
            reportDirty = false
            guard !reportingStopped else { return }
            do {
                let current = try await lease.current()
                if current.generation != reportGeneration || ContinuousClock.now - reportWrittenAt >= Self.reportRefresh {
                    reportGeneration = current.generation
                    lastReport = nil
                }
                let report = currentReport()
                guard report != lastReport else { continue }
                try await client.put(key: GatewayReport.key(prefix: view.prefix, gateway: gatewayID), value: report.encoded(), lease: current.id)
                lastReport = report
                reportWrittenAt = .now
                forgetDrained(report)
            } catch {
                // The watch logs etcd's absence; the lease is granted again once it is back.
                await lease.lost()
                return
            }
        } while reportDirty
    }

    /// A new worker took over (an upgrade): it reports for this gateway from now on. The watch
    /// goes on, so the connections this worker still drains route by the current membership.
    func stopReporting() {
        reportingStopped = true
    }

    private func currentReport() -> GatewayReport {
        var backends: [String: GatewayReport.Backend] = [:]
        for id in checked {
            backends[id.description] = .init(routed: true, inFlight: counters[id]?.active ?? 0)
        }
        for (id, counter) in counters where !checked.contains(id) {
            backends[id.description] = .init(routed: false, inFlight: counter.active)
        }
        return GatewayReport(gateway: gatewayID, revision: appliedRevision, backends: backends)
    }

    /// Backends out of rotation whose last request ended: once that is written, they are no
    /// longer reported.
    private func forgetDrained(_ written: GatewayReport) {
        for (id, counter) in counters where !checked.contains(id) && written.backends[id.description]?.inFlight == 0 && counter.active == 0 {
            counters[id] = nil
        }
    }

    /// The weights (other than 1) of the members in rotation.
    private func rotationWeights() -> [String: [HostPort: Int]] {
        var weights: [String: [HostPort: Int]] = [:]
        for id in checked {
            guard let member = view.members[id], member.weight != 1, case .success(let address) = HostPort.parse(id.address) else { continue }
            weights[id.deployment, default: [:]][address] = member.weight
        }
        return weights
    }

    private func publish() async {
        var rotation: [String: [HostPort]] = [:]
        for id in checked.sorted() {
            guard case .success(let address) = HostPort.parse(id.address) else { continue }
            rotation[id.deployment, default: []].append(address)
        }
        publishedWeights = rotationWeights()
        await membership.setRegistered(rotation, weights: publishedWeights)
        for id in checked {
            guard case .success(let address) = HostPort.parse(id.address) else { continue }
            counters[id] = controller.backend(deployment: id.deployment, address: address.description) ?? counters[id]
        }
    }

    private static func metadata(_ member: Member) -> Logger.Metadata {
        [
            "deployment": "\(member.deployment)", "address": "\(member.address)", "state": "\(member.state.rawValue)",
            "weight": "\(member.weight)", "revision": "\(member.modRevision)",
        ]
    }
}

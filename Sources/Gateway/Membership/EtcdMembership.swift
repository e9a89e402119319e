import Logging
import Membership
import Supervisor

/// Keeps the deployments' registered backends in step with etcd (roadmap step 8): reads the
/// prefix, watches from the read's revision, and hands `BackendMembership` the backends that may
/// take requests.
///
/// - `serving` joins the rotation once a TCP connect to it succeeds (checked again every second
///   until it does); `starting` never does.
/// - `draining`, a deleted key or an expired lease leave the rotation at once; requests already
///   routed to the backend finish there.
/// - etcd unreachable (at start or later): the last membership known keeps serving, never an
///   empty rotation because etcd blinked; reads and watches are retried with a backoff of 0.2 s
///   doubling to 5 s, and the loss and the return are logged once each.
/// - A compaction past the watch, or a lost watch: the prefix is read again and only what
///   differs is applied (`MembershipView`).
actor EtcdMembership {
    private let client: EtcdClient
    private let membership: BackendMembership
    private let prober: HealthProber
    private let logger: Logger
    private var view: MembershipView
    /// Serving members whose connect check passed.
    private var checked: Set<MemberID> = []
    /// Serving members being checked now.
    private var checking: Set<MemberID> = []
    private var checks: [MemberID: Task<Void, Never>] = [:]

    init(config: MembershipConfig, client: EtcdClient, membership: BackendMembership, prober: HealthProber, logger: Logger) {
        self.client = client
        self.membership = membership
        self.prober = prober
        self.logger = logger
        self.view = MembershipView(prefix: config.prefix)
    }

    /// Until cancelled.
    func run() async {
        var backoff: Duration = .milliseconds(200)
        var unreachableSince: ContinuousClock.Instant?
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
                backoff = .milliseconds(200)
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
                    case .compacted(let revision):
                        logger.info("etcd compacted past the membership watch; reading again", metadata: ["compact_revision": "\(revision)"])
                    }
                }
            } catch {
                if Task.isCancelled { break }
                if unreachableSince == nil {
                    unreachableSince = .now
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
        checked.formIntersection(serving)
        for id in checks.keys where !serving.contains(id) {
            checks.removeValue(forKey: id)?.cancel()
            checking.remove(id)
        }
        for id in serving where !checked.contains(id) && !checking.contains(id) {
            startCheck(id)
        }
        if checked != before { await publish() }
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

    private func publish() async {
        var rotation: [String: [HostPort]] = [:]
        for id in checked.sorted() {
            guard case .success(let address) = HostPort.parse(id.address) else { continue }
            rotation[id.deployment, default: []].append(address)
        }
        await membership.setRegistered(rotation)
    }

    private static func metadata(_ member: Member) -> Logger.Metadata {
        [
            "deployment": "\(member.deployment)", "address": "\(member.address)", "state": "\(member.state.rawValue)",
            "weight": "\(member.weight)", "revision": "\(member.modRevision)",
        ]
    }
}

import Logging
import Membership

/// Registers the ready supervised instances of deployments with `publish: true` in etcd, under
/// the gateway's lease, so other hosts' gateways route to them (roadmap step 8).
///
/// - ready: `serving`;
/// - a planned stop (restart, roll, stop, reload): `draining` first, then the stop waits until
///   every *other* gateway has seen it and has nothing in flight there (at most the drain's
///   timeout), and only then drains here as it always did;
/// - gone: the key is deleted. The gateway's exit revokes the lease, which deletes them all.
///
/// etcd unreachable: the instances serve here as before, the failure is logged, and the keys are
/// written again under a new grant of the lease once etcd answers.
actor InstancePublisher {
    private let client: EtcdClient
    private let prefix: String
    private let logger: Logger
    /// The gateway's lease.
    private let lease: EtcdLease
    private var gatewayID = ""
    /// Each published instance's state, and the grant of the lease its key was written under.
    private var published: [MemberID: (state: MemberState, generation: Int)] = [:]

    init(client: EtcdClient, prefix: String, lease: EtcdLease, logger: Logger) {
        self.client = client
        self.prefix = prefix
        self.lease = lease
        self.logger = logger
    }

    /// The id this gateway reports under (known once it listens): its own report is not waited for.
    func identify(_ id: String) {
        gatewayID = id
    }

    /// A new worker took over the instances and publishes them itself: this one writes no more
    /// (and its lease, handed over, is left to expire, so the keys never vanish in between).
    func handOver() {
        published = [:]
    }

    /// Until cancelled: writes again the keys whose lease was lost (etcd away, a failed write),
    /// once a third of the lease's TTL.
    func run() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(Double(lease.ttl) / 3))
            guard !published.isEmpty, let current = try? await lease.current() else { continue }
            for (id, entry) in published.sorted(by: { $0.key < $1.key }) where entry.generation != current.generation {
                guard await write(id, entry.state) != nil else { break }
            }
        }
    }

    func publish(deployment: String, address: HostPort) async {
        let id = MemberID(deployment: deployment, address: address.description)
        published[id] = (.serving, 0)
        await write(id, .serving)
    }

    /// Marks the instance draining and waits (at most `timeout`) until the other gateways let go.
    func withdraw(deployment: String, address: HostPort, timeout: Duration) async {
        let id = MemberID(deployment: deployment, address: address.description)
        guard published[id] != nil else { return }
        published[id] = (.draining, 0)
        guard let revision = await write(id, .draining) else { return }
        let started = ContinuousClock.now
        let outcome = await DrainWait(client: client, prefix: prefix).wait(member: id, revision: revision, excluding: gatewayID, timeout: timeout)
        switch outcome {
        case .released(let gateways):
            logger.info("published instance released by every other gateway", metadata: [
                "deployment": "\(deployment)", "address": "\(address)", "gateways": "\(gateways)",
                "after": "\(ContinuousClock.now - started)",
            ])
        case .timedOut(let waitingOn):
            logger.warning("other gateways did not release a published instance in time; stopping it anyway", metadata: [
                "deployment": "\(deployment)", "address": "\(address)", "timeout": "\(timeout)", "waiting_on": "\(waitingOn)",
            ])
        }
    }

    func remove(deployment: String, address: HostPort) async {
        let id = MemberID(deployment: deployment, address: address.description)
        guard published.removeValue(forKey: id) != nil else { return }
        do {
            try await client.delete(key: MemberRecord.key(prefix: prefix, deployment: deployment, address: id.address))
        } catch {
            logger.warning("etcd unreachable: a gone instance stays registered until this gateway's lease expires", metadata: [
                "deployment": "\(deployment)", "address": "\(address)", "error": "\(error)",
            ])
        }
    }

    /// The revision of the write, nil when etcd did not take it.
    @discardableResult
    private func write(_ id: MemberID, _ state: MemberState) async -> Int64? {
        do {
            let current = try await lease.current()
            let revision = try await client.put(
                key: MemberRecord.key(prefix: prefix, deployment: id.deployment, address: id.address),
                value: MemberRecord.value(state: state), lease: current.id)
            if published[id]?.state == state { published[id]?.generation = current.generation }
            logger.info("instance published", metadata: ["deployment": "\(id.deployment)", "address": "\(id.address)", "state": "\(state.rawValue)"])
            return revision
        } catch {
            await lease.lost()
            logger.warning("etcd unreachable: instance not published", metadata: [
                "deployment": "\(id.deployment)", "address": "\(id.address)", "state": "\(state.rawValue)", "error": "\(error)",
            ])
            return nil
        }
    }
}

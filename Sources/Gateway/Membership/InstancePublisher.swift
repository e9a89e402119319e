import Logging
import Membership

/// Registers the ready supervised instances of deployments with `publish: true` in etcd, under
/// this gateway's own lease, so other hosts' gateways route to them (roadmap step 8).
///
/// - ready: `serving`;
/// - a planned stop (restart, roll, stop, reload): `draining` first, then the stop waits until
///   every *other* gateway has seen it and has nothing in flight there (at most the drain's
///   timeout), and only then drains here as it always did;
/// - gone: the key is deleted. The gateway's exit revokes the lease, which deletes them all.
///
/// etcd unreachable: the instances serve here as before, the failure is logged, and the lease
/// is granted again (every key written again) once etcd answers.
actor InstancePublisher {
    private let client: EtcdClient
    private let prefix: String
    private let logger: Logger
    private var gatewayID = ""
    private var lease: Int64 = 0
    private var published: [MemberID: MemberState] = [:]
    static let ttl = 5

    init(client: EtcdClient, prefix: String, logger: Logger) {
        self.client = client
        self.prefix = prefix
        self.logger = logger
    }

    /// The id this gateway reports under (known once it listens): its own report is not waited for.
    func identify(_ id: String) {
        gatewayID = id
    }

    /// A new worker took over the instances and publishes them under its own lease: this one's
    /// lease is left to expire rather than revoked, so the keys never vanish in between.
    func handOver() {
        lease = 0
        published = [:]
    }

    /// Keeps the lease alive until cancelled, then revokes it (unless handed over).
    func run() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(Double(Self.ttl) / 3))
            guard lease != 0 else {
                if !published.isEmpty { await writeAll() }
                continue
            }
            do {
                if try await client.keepAlive(lease: lease) <= 0 {
                    lease = 0
                    await writeAll()
                }
            } catch {
                lease = 0
            }
        }
        if lease != 0 { try? await client.revoke(lease: lease) }
    }

    func publish(deployment: String, address: HostPort) async {
        let id = MemberID(deployment: deployment, address: address.description)
        published[id] = .serving
        await write(id, .serving)
    }

    /// Marks the instance draining and waits (at most `timeout`) until the other gateways let go.
    func withdraw(deployment: String, address: HostPort, timeout: Duration) async {
        let id = MemberID(deployment: deployment, address: address.description)
        guard published[id] != nil else { return }
        published[id] = .draining
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
            if lease == 0 { lease = try await client.grantLease(ttl: Self.ttl) }
            let revision = try await client.put(
                key: MemberRecord.key(prefix: prefix, deployment: id.deployment, address: id.address),
                value: MemberRecord.value(state: state), lease: lease)
            logger.info("instance published", metadata: ["deployment": "\(id.deployment)", "address": "\(id.address)", "state": "\(state.rawValue)"])
            return revision
        } catch {
            lease = 0
            logger.warning("etcd unreachable: instance not published", metadata: [
                "deployment": "\(id.deployment)", "address": "\(id.address)", "state": "\(state.rawValue)", "error": "\(error)",
            ])
            return nil
        }
    }

    private func writeAll() async {
        for (id, state) in published.sorted(by: { $0.key < $1.key }) {
            guard await write(id, state) != nil else { return }
        }
    }
}

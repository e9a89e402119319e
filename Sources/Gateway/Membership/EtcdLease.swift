import Logging

/// One etcd lease and the keys bound to it: granted on first use, renewed every third of its TTL,
/// granted anew when it is lost (etcd said it expired, a renewal or a write under it failed), and
/// revoked at the end, which deletes its keys at once.
///
/// A gateway has one for everything it writes about itself (its report, its published instances,
/// its part in fleet rolls), so they all go together when it dies; an agent has its own. An owner
/// compares `generation` with the one its keys were written under and writes them again after a
/// new grant, since keys bound to the lost lease expire with it.
actor EtcdLease {
    let ttl: Int
    private let client: EtcdClient
    private let logger: Logger
    private var id: Int64 = 0
    private var generation = 0
    private var handedOver = false

    init(client: EtcdClient, ttl: Int, logger: Logger) {
        self.client = client
        self.ttl = ttl
        self.logger = logger
    }

    /// The lease now, granted if there is none.
    func current() async throws -> (id: Int64, generation: Int) {
        if id == 0 {
            id = try await client.grantLease(ttl: ttl)
            generation += 1
            if generation > 1 { logger.info("etcd lease granted again; its keys are written again", metadata: ["lease": "\(id)"]) }
        }
        return (id, generation)
    }

    /// A write under the lease failed: the next `current()` grants a new one.
    func lost() {
        id = 0
    }

    /// Renews the lease every third of its TTL until cancelled, then revokes it unless it was
    /// handed over.
    func run() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(Double(ttl) / 3))
            guard id != 0 else { continue }
            if (try? await client.keepAlive(lease: id)) ?? 0 <= 0 {
                logger.warning("etcd lease lost; it is granted again at the next write", metadata: ["lease": "\(id)"])
                id = 0
            }
        }
        if !handedOver { await revoke() }
    }

    /// The keys stay for whoever writes them next (a new worker): the lease is left to expire.
    func handOver() {
        handedOver = true
    }

    /// Ends the lease now, and with it every key bound to it.
    func revoke() async {
        guard id != 0 else { return }
        try? await client.revoke(lease: id)
        id = 0
    }
}

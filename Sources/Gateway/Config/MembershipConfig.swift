/// `membership: {etcd: {endpoints, prefix, dial_timeout}}`: backends registered in etcd join the
/// deployments beside the fixed and supervised ones (roadmap step 8).
struct MembershipConfig: Sendable, Equatable {
    /// etcd's client addresses (`HOST:PORT` or `http://HOST:PORT`), tried in turn.
    var endpoints: [HostPort]
    /// Every key of the fleet starts with it; always ends in `/`.
    var prefix = "/gateway/"
    /// How long one connection attempt to an endpoint may take.
    var dialTimeout: Duration = .seconds(2)
}

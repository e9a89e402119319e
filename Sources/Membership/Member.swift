/// What a registered backend says of itself in its value (roadmap step 8): whether it may take
/// requests. etcd's lease says only "gone, eventually"; a planned leave is `draining` first.
public enum MemberState: String, Sendable, Equatable, CaseIterable {
    /// Registered, not ready yet: never routed to.
    case starting
    /// Ready: routed to once the gateway's health check passes.
    case serving
    /// Leaving: out of rotation at once; requests in flight finish, no new ones.
    case draining
}

/// One backend registered under `PREFIX/deployments/D/backends/HOST:PORT`.
public struct Member: Sendable, Equatable {
    public var deployment: String
    /// `HOST:PORT` as the key gives it; the gateway parses it into its own address type.
    public var address: String
    public var state: MemberState
    /// Relative share of the deployment's requests (default 1).
    public var weight: Int
    /// The revision of the write this view of the member comes from.
    public var modRevision: Int64
    /// The lease the key is bound to (0: none).
    public var lease: Int64

    public init(deployment: String, address: String, state: MemberState, weight: Int = 1, modRevision: Int64, lease: Int64 = 0) {
        self.deployment = deployment
        self.address = address
        self.state = state
        self.weight = weight
        self.modRevision = modRevision
        self.lease = lease
    }

    /// Where a member lives in the key space.
    public var id: MemberID { MemberID(deployment: deployment, address: address) }
}

/// A member's identity: the deployment and the address from its key.
public struct MemberID: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var deployment: String
    public var address: String

    public init(deployment: String, address: String) {
        self.deployment = deployment
        self.address = address
    }

    public var description: String { "\(deployment)/\(address)" }

    public static func < (a: MemberID, b: MemberID) -> Bool {
        (a.deployment, a.address) < (b.deployment, b.address)
    }
}

import Synchronization

/// The in-flight count of one backend address of a deployment, with its own suspend scope.
///
/// The load balancer asks `acquire()` before forwarding and skips backends out of rotation, so a
/// backend can be drained (rolling restart) without touching the deployment's admission. Same
/// one-word paused-bit + count scheme as the request counters: once a backend drain is
/// reported, nothing more is forwarded to it.
public final class BackendCounter: Sendable {
    public let deployment: String
    public let address: String

    let counter: AdmissionCounter
    private let succeeded: Atomic<UInt64>
    private let failed: Atomic<UInt64>
    /// Failed releases since the last successful one (passive health).
    private let failedInARow = Atomic<Int>(0)
    private let ejectedFlag = Atomic<Bool>(false)
    private let ejectionCount = Atomic<Int>(0)

    init(deployment: String, address: String) {
        self.deployment = deployment
        self.address = address
        self.counter = AdmissionCounter(limit: nil)
        self.succeeded = Atomic(0)
        self.failed = Atomic(0)
    }

    /// False from the pre-suspend of this backend's own scope until its resume, so the load
    /// balancer stops picking it while requests already sent still finish. A deployment or
    /// gateway suspend does not take it out (those refuse requests before they are routed).
    public var inRotation: Bool { !counter.isDraining }

    /// Requests being forwarded to this backend now.
    public var active: Int { counter.active }

    /// Takes a slot for one forwarded request; false when the backend scope is SUSPENDING or
    /// SUSPENDED. Lock-free. Every `true` must be matched by one ``release(failed:)``.
    public func acquire() -> Bool {
        if case .admitted = counter.acquire() { return true }
        return false
    }

    /// Gives the slot back.
    ///
    /// - Parameter failed: the backend refused, broke or timed out; counted in `failures`.
    public func release(failed: Bool) {
        if failed {
            self.failed.wrappingAdd(1, ordering: .relaxed)
            failedInARow.wrappingAdd(1, ordering: .relaxed)
        } else {
            succeeded.wrappingAdd(1, ordering: .relaxed)
            // A load first: the store would bounce the cache line on every request otherwise.
            if failedInARow.load(ordering: .relaxed) != 0 { failedInARow.store(0, ordering: .relaxed) }
        }
        counter.release()
    }

    // MARK: Passive ejection

    /// Failed releases since the last successful one.
    public var failuresInARow: Int { failedInARow.load(ordering: .relaxed) }

    /// Out of the load balancer's choice after failing too often (passive health checks), until
    /// `restore()`. Separate from a drain: an ejected backend is still RUNNING and counted.
    public var isEjected: Bool { ejectedFlag.load(ordering: .relaxed) }

    /// How many times it was ejected.
    public var ejections: Int { ejectionCount.load(ordering: .relaxed) }

    /// Ejects it; false when it already was (exactly one caller wins).
    public func eject() -> Bool {
        guard ejectedFlag.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else {
            return false
        }
        ejectionCount.wrappingAdd(1, ordering: .relaxed)
        return true
    }

    /// Lets it back in, with a clean count of failures.
    public func restore() {
        failedInARow.store(0, ordering: .relaxed)
        ejectedFlag.store(false, ordering: .relaxed)
    }

    /// Acquisitions ever: completed ones plus those in flight.
    var total: Int {
        Int(truncatingIfNeeded: succeeded.load(ordering: .relaxed) &+ failed.load(ordering: .relaxed)) + active
    }

    var failures: Int { Int(truncatingIfNeeded: failed.load(ordering: .relaxed)) }
}

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
        } else {
            succeeded.wrappingAdd(1, ordering: .relaxed)
        }
        counter.release()
    }

    /// Acquisitions ever: completed ones plus those in flight.
    var total: Int {
        Int(truncatingIfNeeded: succeeded.load(ordering: .relaxed) &+ failed.load(ordering: .relaxed)) + active
    }

    var failures: Int { Int(truncatingIfNeeded: failed.load(ordering: .relaxed)) }
}

import Synchronization

/// The admission point of one (deployment, entry point): where the gateway asks "may this
/// request run?" and reports how it ended.
///
/// Looked up once (``RequestController/controlPoint(deployment:entryPoint:)``) and kept by the
/// listener, so the request path never touches a dictionary. `beginRequest` and token
/// completion are lock-free and allocation-free: three CAS (and three relaxed limit loads) to
/// admit, three decrements, one status-class add and one histogram add to complete, plus two
/// clock reads.
///
/// A reconcile that keeps the entry point keeps this object; one that removes it leaves it
/// working (it still counts into its deployment's and the gateway's counters), so a listener
/// that holds it until its routes are rebuilt never loses a count.
public final class ControlPoint: Sendable {
    public let deployment: String
    public let entryPoint: String

    let global: AdmissionCounter
    let deploymentCounter: AdmissionCounter
    let counter: AdmissionCounter
    let latency: LatencyHistogram
    /// Completions by status class: informational, success, redirection, client error, server
    /// error, aborted. Written on every completion, next to nothing else hot.
    private let statusCounts: InlineArray<6, Atomic<UInt64>>
    /// Rejections by reason, in `RejectionReason.allCases` order.
    private let rejections: InlineArray<4, Atomic<UInt64>>

    init(
        deployment: String, entryPoint: String,
        global: AdmissionCounter, deploymentCounter: AdmissionCounter, counter: AdmissionCounter
    ) {
        self.deployment = deployment
        self.entryPoint = entryPoint
        self.global = global
        self.deploymentCounter = deploymentCounter
        self.counter = counter
        self.latency = LatencyHistogram()
        self.statusCounts = InlineArray { _ in Atomic(0) }
        self.rejections = InlineArray { _ in Atomic(0) }
    }

    /// Admits the request at every level (gateway, deployment, entry point) or refuses it with
    /// the first level's reason, giving back the levels already taken.
    ///
    /// Each level checks its paused bit and its limit in the same atomic operation, so a drain
    /// that reported zero stays at zero. Lock-free.
    @inline(__always)
    public func beginRequest() -> Admission {
        switch global.acquire() {
        case .admitted: break
        case .paused: return reject(.suspended)
        case .full: return reject(.globalLimit)
        }
        switch deploymentCounter.acquire() {
        case .admitted: break
        case .paused:
            global.release()
            return reject(.suspended)
        case .full:
            global.release()
            return reject(.deploymentLimit)
        }
        switch counter.acquire() {
        case .admitted: break
        case .paused:
            deploymentCounter.release()
            global.release()
            return reject(.suspended)
        case .full:
            deploymentCounter.release()
            global.release()
            return reject(.entryPointLimit)
        }
        return .run(RequestToken(point: self, start: MonotonicClock.now()))
    }

    /// True when this point, its deployment or the gateway is in PRE_SUSPEND or later: HTTP/1.1
    /// then answers with `Connection: close` and HTTP/2 sends GOAWAY. Three relaxed loads.
    public var isDraining: Bool {
        counter.isDraining || deploymentCounter.isDraining || global.isDraining
    }

    private func reject(_ reason: RejectionReason) -> Admission {
        rejections[Self.rejectionIndex(reason)].wrappingAdd(1, ordering: .relaxed)
        return .rejected(reason)
    }

    @inline(__always)
    func complete(start: UInt64, status: Int?) {
        let end = MonotonicClock.now()
        latency.record(nanoseconds: end &- start)
        statusCounts[Self.statusClass(status)].wrappingAdd(1, ordering: .relaxed)
        counter.release()
        deploymentCounter.release()
        global.release()
    }

    @inline(__always)
    static func statusClass(_ status: Int?) -> Int {
        guard let status else { return 5 }
        let hundreds = status / 100
        return hundreds <= 1 ? 0 : (hundreds >= 5 ? 4 : hundreds &- 1)
    }

    static func rejectionIndex(_ reason: RejectionReason) -> Int {
        switch reason {
        case .suspended: return 0
        case .globalLimit: return 1
        case .deploymentLimit: return 2
        case .entryPointLimit: return 3
        }
    }

    // MARK: Reading

    /// Requests admitted here and not yet completed.
    var active: Int { counter.active }

    var statusClassCounts: StatusClassCounts {
        func load(_ index: Int) -> Int { Int(truncatingIfNeeded: statusCounts[index].load(ordering: .relaxed)) }
        return StatusClassCounts(
            informational: load(0), success: load(1), redirection: load(2),
            clientError: load(3), serverError: load(4), aborted: load(5))
    }

    /// Rejections by reason, every reason present.
    var rejectionCounts: [RejectionReason: Int] {
        var result: [RejectionReason: Int] = [:]
        for reason in RejectionReason.allCases {
            result[reason] = Int(truncatingIfNeeded: rejections[Self.rejectionIndex(reason)].load(ordering: .relaxed))
        }
        return result
    }
}

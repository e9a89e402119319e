/// Proof of one admitted request. Non-copyable so it is completed exactly once.
///
/// It is a struct of two words, so admitting a request allocates nothing. It holds a +1
/// reference to its control point (an `Unmanaged`, released on completion) so the counters it
/// decrements outlive it even if the controller is dropped meanwhile.
///
/// If a token is dropped without ``complete(status:)`` (an error path that forgot it, a task
/// cancelled) its `deinit` completes it as aborted (`nil` status): the in-flight counts never
/// leak, so a drain cannot hang on a request that no longer exists.
public struct RequestToken: ~Copyable, Sendable {
    private let point: Unmanaged<ControlPoint>
    private let start: UInt64

    @inline(__always)
    init(point: ControlPoint, start: UInt64) {
        self.point = Unmanaged.passRetained(point)
        self.start = start
    }

    /// Ends the request: frees its slot at every level and records its status class and latency.
    ///
    /// - Parameter status: the HTTP status sent to the client; `nil` = no response was sent
    ///   (client abort before a response).
    @inline(__always)
    public consuming func complete(status: Int?) {
        let point = self.point
        let start = self.start
        discard self
        point.takeUnretainedValue().complete(start: start, status: status)
        point.release()
    }

    deinit {
        point.takeUnretainedValue().complete(start: start, status: nil)
        point.release()
    }
}

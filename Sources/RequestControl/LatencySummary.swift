/// Percentiles of request latency (admission to completion), in milliseconds.
///
/// Percentiles come from a log-linear histogram, so they are accurate to about 1/16 of the
/// value (one sub-bucket); `maxMs` is exact. All zero when `count` is 0.
public struct LatencySummary: Sendable, Equatable {
    public var count: Int
    public var p50Ms: Double
    public var p90Ms: Double
    public var p99Ms: Double
    public var maxMs: Double

    public init(count: Int, p50Ms: Double, p90Ms: Double, p99Ms: Double, maxMs: Double) {
        self.count = count
        self.p50Ms = p50Ms
        self.p90Ms = p90Ms
        self.p99Ms = p99Ms
        self.maxMs = maxMs
    }
}

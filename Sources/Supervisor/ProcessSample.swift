/// Memory and CPU use of one process at one moment, for the status page and metrics.
public struct ProcessSample: Sendable, Equatable {
    /// Resident set size.
    public var rssBytes: Int
    /// User plus system CPU time consumed so far.
    public var cpuSeconds: Double

    public init(rssBytes: Int, cpuSeconds: Double) {
        self.rssBytes = rssBytes
        self.cpuSeconds = cpuSeconds
    }

    /// CPU use between `previous` and this sample as a percentage of one core (200 = two cores
    /// busy), as `top` shows it. 0 when no time passed.
    public func cpuPercent(since previous: ProcessSample, elapsed: Duration) -> Double {
        let seconds = Double(elapsed.components.seconds)
            + Double(elapsed.components.attoseconds) / 1e18
        guard seconds > 0 else { return 0 }
        return max(0, cpuSeconds - previous.cpuSeconds) / seconds * 100
    }
}

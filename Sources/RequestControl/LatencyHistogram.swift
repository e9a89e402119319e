import Synchronization

/// A lock-free log-linear histogram of latencies in nanoseconds.
///
/// Every completed request records into it, from any thread, so it is made of atomic buckets
/// and one relaxed `wrappingAdd` per record. hdrhistogram-swift has the same bucket layout but
/// is not thread-safe, and wrapping it in a lock would put a lock on every completion, which
/// the request path must not have.
///
/// Layout: values below 16 ns have a bucket each; above, every power of two is split into 16
/// linear sub-buckets, so a bucket is at most 1/16 of its value wide (percentiles within ~6 %).
/// Values of 2^44 ns (about 4.9 hours) and more land in the last bucket. The maximum is kept
/// exactly, with a load on the common path and a CAS only when it grows.
package final class LatencyHistogram: Sendable {
    package static let bucketCount = 656  // (44 - 3) * 16

    private let buckets: InlineArray<656, Atomic<UInt64>>
    private let maximum: Atomic<UInt64>

    package init() {
        self.buckets = InlineArray { _ in Atomic(0) }
        self.maximum = Atomic(0)
    }

    /// The bucket of a value: identity below 16, then 16 sub-buckets per power of two.
    @inline(__always)
    package static func bucketIndex(_ value: UInt64) -> Int {
        if value < 16 { return Int(value) }
        let exponent = 63 &- value.leadingZeroBitCount  // >= 4
        let index = ((exponent &- 3) << 4) &+ Int(truncatingIfNeeded: (value >> UInt64(exponent &- 4)) & 15)
        return index < bucketCount ? index : bucketCount &- 1
    }

    /// Lowest value of a bucket and its width.
    package static func bucketRange(_ index: Int) -> (lower: UInt64, width: UInt64) {
        if index < 16 { return (UInt64(index), 1) }
        let exponent = (index >> 4) + 3
        let sub = UInt64(index & 15)
        let width = UInt64(1) << UInt64(exponent - 4)
        return ((16 + sub) * width, width)
    }

    /// Records one latency. Lock-free: one relaxed add, one relaxed load (plus a CAS when a new
    /// maximum is seen).
    @inline(__always)
    package func record(nanoseconds value: UInt64) {
        buckets[Self.bucketIndex(value)].wrappingAdd(1, ordering: .relaxed)
        var current = maximum.load(ordering: .relaxed)
        while value > current {
            let (exchanged, original) = maximum.weakCompareExchange(
                expected: current, desired: value, successOrdering: .relaxed, failureOrdering: .relaxed)
            if exchanged { break }
            current = original
        }
    }

    /// Number of recorded values.
    package var count: Int {
        var total: UInt64 = 0
        for index in 0..<Self.bucketCount { total &+= buckets[index].load(ordering: .relaxed) }
        return Int(truncatingIfNeeded: total)
    }

    /// The largest recorded value, exact.
    package var maximumNanoseconds: UInt64 { maximum.load(ordering: .relaxed) }

    /// Percentiles (0...1) in nanoseconds, each the middle of the bucket holding that rank,
    /// capped at the exact maximum. Empty histogram: zeros.
    package func percentiles(_ fractions: [Double]) -> [Double] {
        var counts = [UInt64](repeating: 0, count: Self.bucketCount)
        var total: UInt64 = 0
        for index in 0..<Self.bucketCount {
            let value = buckets[index].load(ordering: .relaxed)
            counts[index] = value
            total &+= value
        }
        guard total > 0 else { return fractions.map { _ in 0 } }
        let maximum = Double(maximumNanoseconds)
        return fractions.map { fraction in
            let rank = max(1, UInt64((min(max(fraction, 0), 1) * Double(total)).rounded(.up)))
            var seen: UInt64 = 0
            for index in 0..<Self.bucketCount {
                seen &+= counts[index]
                if seen >= rank {
                    let (lower, width) = Self.bucketRange(index)
                    let middle = Double(lower) + Double(width - 1) / 2
                    return min(middle, maximum)
                }
            }
            return maximum
        }
    }

    /// p50/p90/p99/max in milliseconds.
    package func summary() -> LatencySummary {
        let values = percentiles([0.5, 0.9, 0.99])
        let count = self.count
        let toMs = 1e-6
        return LatencySummary(
            count: count, p50Ms: values[0] * toMs, p90Ms: values[1] * toMs, p99Ms: values[2] * toMs,
            maxMs: count == 0 ? 0 : Double(maximumNanoseconds) * toMs)
    }
}

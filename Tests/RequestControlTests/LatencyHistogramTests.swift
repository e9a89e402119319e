import Testing

@testable import RequestControl

@Suite("Latency histogram")
struct LatencyHistogramTests {
    @Test func bucketsAreContiguousAndHoldTheirValues() {
        var previous = -1
        var value: UInt64 = 0
        while value < (UInt64(1) << 44) {
            let index = LatencyHistogram.bucketIndex(value)
            #expect(index == previous || index == previous + 1)
            let (lower, width) = LatencyHistogram.bucketRange(index)
            #expect(lower <= value && value < lower + width)
            #expect(width <= max(1, lower / 16))  // at most 1/16 of the value wide
            previous = index
            value = value < 4096 ? value + 1 : value + value / 37
        }
        #expect(LatencyHistogram.bucketIndex(.max) == LatencyHistogram.bucketCount - 1)
    }

    @Test func percentilesOfKnownValues() {
        let histogram = LatencyHistogram()
        // 1 µs ... 1000 µs, one each.
        for micros in 1...1000 { histogram.record(nanoseconds: UInt64(micros) * 1000) }
        let summary = histogram.summary()
        #expect(summary.count == 1000)
        #expect(abs(summary.p50Ms - 0.5) <= 0.5 * 0.07)
        #expect(abs(summary.p90Ms - 0.9) <= 0.9 * 0.07)
        #expect(abs(summary.p99Ms - 0.99) <= 0.99 * 0.07)
        #expect(summary.maxMs == 1.0)
    }

    @Test func skewedDistribution() {
        let histogram = LatencyHistogram()
        for _ in 0..<990 { histogram.record(nanoseconds: 200_000) }  // 0.2 ms
        for _ in 0..<10 { histogram.record(nanoseconds: 50_000_000) }  // 50 ms
        let summary = histogram.summary()
        #expect(abs(summary.p90Ms - 0.2) <= 0.2 * 0.07)
        #expect(abs(summary.p99Ms - 0.2) <= 0.2 * 0.07)
        #expect(histogram.percentiles([0.995])[0] >= 50_000_000 * 0.93)
        #expect(summary.maxMs == 50)
    }

    @Test func emptyIsZero() {
        #expect(LatencyHistogram().summary() == LatencySummary(count: 0, p50Ms: 0, p90Ms: 0, p99Ms: 0, maxMs: 0))
    }

    @Test func concurrentRecordsAreAllCounted() async {
        let histogram = LatencyHistogram()
        await withTaskGroup(of: Void.self) { group in
            for task in 0..<8 {
                group.addTask {
                    for i in 0..<20_000 { histogram.record(nanoseconds: UInt64(i * 8 + task)) }
                }
            }
        }
        #expect(histogram.count == 160_000)
        #expect(histogram.maximumNanoseconds == 159_999)
    }
}

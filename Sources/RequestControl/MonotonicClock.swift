#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Nanoseconds on `CLOCK_MONOTONIC`, for request latency.
///
/// A plain `UInt64` read straight from `clock_gettime` (a vDSO call on Linux): it is what the
/// request path pays twice per request, so it avoids `ContinuousClock.Instant`'s 128-bit
/// `Duration` arithmetic (the benchmark prints both costs).
enum MonotonicClock {
    @inline(__always)
    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(truncatingIfNeeded: ts.tv_sec) &* 1_000_000_000 &+ UInt64(truncatingIfNeeded: ts.tv_nsec)
    }
}

/// Durations as operators write them: `500ms`, `30s`, `1.5s`, `2m`, `1h`, or a bare number of
/// seconds; at most `ConfigBounds.maxDuration` (a year), so no duration can overflow a clock.
///
/// Parsed exactly in integer nanoseconds (not through `Double`), so `0.1s` is exactly 100 ms and
/// compares equal to `.milliseconds(100)`.
enum DurationParser {
    static func parse(_ text: String) -> Result<Duration, ConfigValueProblem> {
        let expected = "expected a duration such as 500ms, 30s, 1.5s, 2m or 1h"
        var digits = Substring(text.trimmingSpaces())
        if digits.hasPrefix("-") {
            return .failure(ConfigValueProblem("must not be negative"))
        }
        let unitStart = digits.firstIndex { !($0.isASCII && ($0.isNumber || $0 == ".")) } ?? digits.endIndex
        let unit = digits[unitStart...]
        digits = digits[..<unitStart]

        let nanosecondsPerUnit: Int64
        switch unit {
        case "ms": nanosecondsPerUnit = 1_000_000
        case "", "s": nanosecondsPerUnit = 1_000_000_000
        case "m": nanosecondsPerUnit = 60 * 1_000_000_000
        case "h": nanosecondsPerUnit = 3600 * 1_000_000_000
        default: return .failure(ConfigValueProblem(expected))
        }

        let parts = digits.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let whole = parts.first, !whole.isEmpty, whole.allSatisfy(\.isNumber),
            parts.count == 1 || (!parts[1].isEmpty && parts[1].allSatisfy(\.isNumber))
        else {
            return .failure(ConfigValueProblem(expected))
        }
        // Sub-nanosecond digits cannot matter; ignore them rather than overflow on them.
        let fraction = parts.count == 2 ? parts[1].prefix(9) : ""
        let tooLarge = ConfigValueProblem("must be at most \(ConfigBounds.maxDurationText)")
        guard let wholeValue = Int64(whole), let fractionValue = Int64(fraction.isEmpty ? "0" : fraction) else {
            return .failure(tooLarge)
        }
        var scale: Int64 = 1
        for _ in 0..<fraction.count { scale *= 10 }

        let (wholeNanos, overflow1) = wholeValue.multipliedReportingOverflow(by: nanosecondsPerUnit)
        // unit * fraction / scale, split as unit = q * scale + r so that neither product can
        // overflow (q * fraction < unit, r * fraction < 10^18).
        let fractionNanos = (nanosecondsPerUnit / scale) * fractionValue
            + (nanosecondsPerUnit % scale) * fractionValue / scale
        let (total, overflow2) = wholeNanos.addingReportingOverflow(fractionNanos)
        guard !overflow1, !overflow2 else { return .failure(tooLarge) }
        let duration = Duration.nanoseconds(total)
        guard duration <= ConfigBounds.maxDuration else { return .failure(tooLarge) }
        return .success(duration)
    }
}

extension String {
    fileprivate func trimmingSpaces() -> String {
        String(self.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}

/// Numbers as an operator reads them in a terminal: short, fixed rules, `-` for unknown.
///
/// Pure functions, so the table's look is unit-tested without a gateway.
enum AdminFormat {
    /// What a table shows for a value the gateway reported as `null` (or did not report).
    static let missing = "-"

    /// An uptime in at most two units, the smaller one dropped when zero: `12s`, `3m4s`, `3m`,
    /// `2h5m`, `3d4h`. Fractions of a second are cut off (an uptime of 0.4 s is `0s`).
    static func uptime(seconds: Double?) -> String {
        guard let seconds, seconds.isFinite, seconds >= 0 else { return Self.missing }
        guard seconds < Double(Int.max / 2) else { return Self.missing }
        let total = Int(seconds)
        let minute = 60
        let hour = 60 * minute
        let day = 24 * hour
        func two(_ big: Int, _ bigUnit: String, _ small: Int, _ smallUnit: String) -> String {
            small == 0 ? "\(big)\(bigUnit)" : "\(big)\(bigUnit)\(small)\(smallUnit)"
        }
        if total < minute { return "\(total)s" }
        if total < hour { return two(total / minute, "m", total % minute, "s") }
        if total < day { return two(total / hour, "h", total % hour / minute, "m") }
        return two(total / day, "d", total % day / hour, "h")
    }

    /// A byte count in decimal (SI) units with one decimal: `512 B`, `1.5 kB`, `12.3 MB`,
    /// `2.0 GB` (decimal, as `ps` and `top` users compare against 1000s, and as pm2 shows it).
    static func bytes(_ count: Int64?) -> String {
        guard let count, count >= 0 else { return Self.missing }
        if count < 1000 { return "\(count) B" }
        let units = ["kB", "MB", "GB", "TB", "PB", "EB"]
        var value = Double(count) / 1000
        var unit = 0
        // Choose the unit after rounding, so 999_960 bytes is `1.0 MB`, not `1000.0 kB`.
        while (value * 10).rounded() >= 10_000, unit < units.count - 1 {
            value /= 1000
            unit += 1
        }
        return "\(Self.oneDecimal(value)) \(units[unit])"
    }

    /// A CPU share with one decimal: `0.4%`, `112.0%` (more than one core).
    static func percent(_ value: Double?) -> String {
        guard let value, value.isFinite, value >= 0 else { return Self.missing }
        return "\(Self.oneDecimal(value))%"
    }

    /// `yes`/`no`, or `-`.
    static func yesNo(_ value: Bool?) -> String {
        value.map { $0 ? "yes" : "no" } ?? Self.missing
    }

    /// An optional number, or `-`.
    static func number(_ value: Int?) -> String {
        value.map(String.init) ?? Self.missing
    }

    /// Milliseconds as a whole number: `12 ms`.
    static func milliseconds(_ value: Double?) -> String {
        guard let value, value.isFinite else { return Self.missing }
        // A number from the wire: one too large for an Int is shown as it came.
        guard abs(value) < 1e15 else { return "\(value) ms" }
        return "\(Int(value.rounded())) ms"
    }

    /// A duration in seconds for messages: `5 s`, `0.5 s`, `930 s`.
    static func seconds(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        if attoseconds == 0 { return "\(seconds) s" }
        let value = Double(seconds) + Double(attoseconds) / 1e18
        return "\(Self.trimmed(value)) s"
    }

    /// A number of seconds as typed: `30`, `0.5`.
    static func trimmed(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e15 { return String(Int(value)) }
        return String(value)
    }

    /// `value` rounded to one decimal and always printed with it: `12.3`, `2.0`.
    static func oneDecimal(_ value: Double) -> String {
        guard abs(value) < 1e15 else { return String(value) }
        let tenths = Int64((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }
}

/// Turns `AccessLogRecord`s into lines, as bytes appended to a buffer. Pure: no clock, no I/O, so
/// a test checks the exact text.
///
/// JSON (one object per line; `null` where a field does not apply):
/// `{"time":"2026-12-03T21:57:45.123Z","request_id":"...","client":"127.0.0.1:50312",
/// "method":"GET","path":"/cart","protocol":"HTTP/1.1","deployment":"shop","entry_point":"default",
/// "backend":"127.0.0.1:8081","status":200,"bytes_in":0,"bytes_out":512,"duration_ms":1.204,
/// "reject_reason":null}`
///
/// Combined (Apache/nginx), then the request id and the duration in milliseconds:
/// `127.0.0.1 - - [03/Dec/2026:21:57:45 +0000] "GET /cart HTTP/1.1" 200 512 "-" "curl/7.88.1" ID 1.204`
///
/// Written by hand into a byte array rather than through `JSONEncoder` or string interpolation:
/// this runs on the event loop once per request, and a line costs a few appends this way; the
/// date part is computed once per second.
struct AccessLogFormatter {
    let format: AccessLogFormat
    private var cachedSecond = Int.min
    /// `2026-12-03T21:57:45` (JSON) or `03/Dec/2026:21:57:45 +0000` (combined) for `cachedSecond`.
    private var cachedDate: [UInt8] = []

    init(format: AccessLogFormat) {
        self.format = format
    }

    mutating func append(_ record: AccessLogRecord, to out: inout [UInt8]) {
        switch format {
        case .json: appendJSON(record, to: &out)
        case .combined: appendCombined(record, to: &out)
        }
    }

    // MARK: JSON

    private mutating func appendJSON(_ r: AccessLogRecord, to out: inout [UInt8]) {
        out.append(contentsOf: #"{"time":""#.utf8)
        out.append(contentsOf: date(r.seconds))
        out.append(UInt8(ascii: "."))
        Self.appendPadded(r.nanoseconds / 1_000_000, width: 3, to: &out)
        out.append(contentsOf: #"Z","request_id":"#.utf8)
        Self.appendJSONString(r.requestID, to: &out)
        out.append(contentsOf: #","client":"#.utf8)
        Self.appendJSONAddress(host: r.clientIP, port: r.clientPort, to: &out)
        out.append(contentsOf: #","method":"#.utf8)
        Self.appendJSONString(r.method, to: &out)
        out.append(contentsOf: #","path":"#.utf8)
        Self.appendJSONString(r.path, to: &out)
        out.append(contentsOf: #","protocol":"#.utf8)
        Self.appendJSONString(r.httpVersion, to: &out)
        out.append(contentsOf: #","deployment":"#.utf8)
        Self.appendJSONString(r.deployment, to: &out)
        out.append(contentsOf: #","entry_point":"#.utf8)
        Self.appendJSONString(r.entryPoint, to: &out)
        out.append(contentsOf: #","backend":"#.utf8)
        if let backend = r.backend {
            Self.appendJSONAddress(host: backend.host, port: backend.port, to: &out)
        } else {
            out.append(contentsOf: "null".utf8)
        }
        out.append(contentsOf: #","status":"#.utf8)
        Self.appendDecimal(r.status, to: &out)
        out.append(contentsOf: #","bytes_in":"#.utf8)
        Self.appendDecimal(r.bytesIn, to: &out)
        out.append(contentsOf: #","bytes_out":"#.utf8)
        Self.appendDecimal(r.bytesOut, to: &out)
        out.append(contentsOf: #","duration_ms":"#.utf8)
        Self.appendMilliseconds(r.durationNanoseconds, to: &out)
        out.append(contentsOf: #","reject_reason":"#.utf8)
        Self.appendJSONString(r.rejectReason, to: &out)
        out.append(contentsOf: "}\n".utf8)
    }

    private static func appendJSONString(_ value: String?, to out: inout [UInt8]) {
        guard let value else {
            out.append(contentsOf: "null".utf8)
            return
        }
        out.append(UInt8(ascii: "\""))
        appendJSONEscaped(value, to: &out)
        out.append(UInt8(ascii: "\""))
    }

    /// `"host:port"`, `"[v6]:port"` for an IPv6 address. Written here rather than through
    /// `HostPort.description`: no string is built per line (and `String.contains` with a string
    /// argument would go through Foundation, which showed in the profile).
    private static func appendJSONAddress(host: String, port: Int, to out: inout [UInt8]) {
        let bracketed = host.utf8.contains(UInt8(ascii: ":"))
        out.append(contentsOf: bracketed ? #""["#.utf8 : #"""#.utf8)
        appendJSONEscaped(host, to: &out)
        out.append(contentsOf: bracketed ? "]:".utf8 : ":".utf8)
        appendDecimal(port, to: &out)
        out.append(UInt8(ascii: "\""))
    }

    private static func needsJSONEscape(_ byte: UInt8) -> Bool {
        byte < 0x20 || byte == 0x7F || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\")
    }

    /// RFC 8259 escaping: quote, backslash and control characters; the rest of UTF-8 as it is.
    /// Most values need none: they are copied at once.
    static func appendJSONEscaped(_ value: String, to out: inout [UInt8]) {
        guard value.utf8.contains(where: needsJSONEscape) else {
            out.append(contentsOf: value.utf8)
            return
        }
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                out.append(UInt8(ascii: "\\"))
                out.append(byte)
            case 0..<0x20, 0x7F:
                out.append(contentsOf: #"\u00"#.utf8)
                out.append(hexDigit(byte >> 4))
                out.append(hexDigit(byte & 0xF))
            default:
                out.append(byte)
            }
        }
    }

    // MARK: Combined

    private mutating func appendCombined(_ r: AccessLogRecord, to out: inout [UInt8]) {
        Self.appendCombinedEscaped(r.clientIP, to: &out)
        out.append(contentsOf: " - - [".utf8)
        out.append(contentsOf: date(r.seconds))
        out.append(contentsOf: "] \"".utf8)
        Self.appendCombinedEscaped(r.method, to: &out)
        out.append(UInt8(ascii: " "))
        Self.appendCombinedEscaped(r.path, to: &out)
        out.append(UInt8(ascii: " "))
        Self.appendCombinedEscaped(r.httpVersion, to: &out)
        out.append(contentsOf: "\" ".utf8)
        Self.appendDecimal(r.status, to: &out)
        out.append(UInt8(ascii: " "))
        Self.appendDecimal(r.bytesOut, to: &out)
        out.append(contentsOf: " \"".utf8)
        Self.appendCombinedEscaped(r.referer ?? "-", to: &out)
        out.append(contentsOf: "\" \"".utf8)
        Self.appendCombinedEscaped(r.userAgent ?? "-", to: &out)
        out.append(contentsOf: "\" ".utf8)
        // Safe as it is: `RequestID` admits no space, quote or control byte.
        out.append(contentsOf: r.requestID.utf8)
        out.append(UInt8(ascii: " "))
        Self.appendMilliseconds(r.durationNanoseconds, to: &out)
        out.append(UInt8(ascii: "\n"))
    }

    /// nginx's escaping for its text logs: a quote, a backslash, control bytes and bytes beyond
    /// ASCII become `\xHH`, so a field can never end early or span lines.
    static func appendCombinedEscaped(_ value: String, to out: inout [UInt8]) {
        guard value.utf8.contains(where: needsCombinedEscape) else {
            out.append(contentsOf: value.utf8)
            return
        }
        for byte in value.utf8 {
            if needsCombinedEscape(byte) {
                out.append(contentsOf: #"\x"#.utf8)
                out.append(hexDigit(byte >> 4, upper: true))
                out.append(hexDigit(byte & 0xF, upper: true))
            } else {
                out.append(byte)
            }
        }
    }

    private static func needsCombinedEscape(_ byte: UInt8) -> Bool {
        byte < 0x20 || byte >= 0x7F || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\")
    }

    // MARK: Numbers and dates

    private static func hexDigit(_ value: UInt8, upper: Bool = false) -> UInt8 {
        value < 10 ? UInt8(ascii: "0") + value : (upper ? UInt8(ascii: "A") : UInt8(ascii: "a")) + value - 10
    }

    static func appendDecimal(_ value: Int, to out: inout [UInt8]) {
        if value < 0 {
            out.append(UInt8(ascii: "-"))
            appendDecimal(0 - value, to: &out)
            return
        }
        if value >= 10 { appendDecimal(value / 10, to: &out) }
        out.append(UInt8(ascii: "0") + UInt8(value % 10))
    }

    private static func appendPadded(_ value: Int, width: Int, to out: inout [UInt8]) {
        var divisor = 1
        for _ in 1..<width { divisor *= 10 }
        var rest = value
        while divisor > 0 {
            out.append(UInt8(ascii: "0") + UInt8((rest / divisor) % 10))
            rest %= divisor
            divisor /= 10
        }
    }

    /// Milliseconds with three decimals (microseconds): `0.087`, `1204.500`.
    static func appendMilliseconds(_ nanoseconds: Int64, to out: inout [UInt8]) {
        let micros = Int(max(0, nanoseconds) / 1000)
        appendDecimal(micros / 1000, to: &out)
        out.append(UInt8(ascii: "."))
        appendPadded(micros % 1000, width: 3, to: &out)
    }

    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    private mutating func date(_ seconds: Int) -> [UInt8] {
        if seconds == cachedSecond { return cachedDate }
        let (year, month, day) = Self.civilDate(daysSince1970: seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400)
        let secondOfDay = seconds - (seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400) * 86_400
        var text: [UInt8] = []
        switch format {
        case .json:
            Self.appendPadded(year, width: 4, to: &text)
            text.append(UInt8(ascii: "-"))
            Self.appendPadded(month, width: 2, to: &text)
            text.append(UInt8(ascii: "-"))
            Self.appendPadded(day, width: 2, to: &text)
            text.append(UInt8(ascii: "T"))
        case .combined:
            Self.appendPadded(day, width: 2, to: &text)
            text.append(UInt8(ascii: "/"))
            text.append(contentsOf: Self.months[month - 1].utf8)
            text.append(UInt8(ascii: "/"))
            Self.appendPadded(year, width: 4, to: &text)
            text.append(UInt8(ascii: ":"))
        }
        Self.appendPadded(secondOfDay / 3600, width: 2, to: &text)
        text.append(UInt8(ascii: ":"))
        Self.appendPadded(secondOfDay / 60 % 60, width: 2, to: &text)
        text.append(UInt8(ascii: ":"))
        Self.appendPadded(secondOfDay % 60, width: 2, to: &text)
        if format == .combined { text.append(contentsOf: " +0000".utf8) }
        cachedSecond = seconds
        cachedDate = text
        return text
    }

    /// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
    /// `civil_from_days`), so no `gmtime_r` call and no locale is involved.
    static func civilDate(daysSince1970 days: Int) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}

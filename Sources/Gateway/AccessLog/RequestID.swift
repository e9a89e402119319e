import NIOHTTP1
import ProxyRules

/// The request id rule, written once for HTTP/1.1 requests and HTTP/2 streams: a request keeps
/// the id its client (or a proxy in front) gave in `X-Request-Id` when that is well formed, and
/// gets a new one otherwise. The id goes to the backend in `X-Request-Id` (replacing a malformed
/// one), comes back on the response (the gateway's own answers too) and names the request in the
/// access log.
///
/// Well formed: exactly one `X-Request-Id` field whose value is 1 to 128 characters, each an
/// ASCII letter or digit or one of `- _ . : + / = @ ~`. That covers UUIDs, hex, base64 and the
/// usual `prefix:counter` forms, and keeps out spaces, quotes and control bytes, so an id can be
/// written into a log line or a header as it is, with no escaping.
enum RequestID {
    static let headerName = "x-request-id"
    static let maxLength = 128

    /// The id of a request that came with `count` `X-Request-Id` fields, `given` the first one:
    /// the client's when it sent exactly one and it is well formed (two ids cannot both name
    /// the request: neither is kept), else a new one from `generator`. Both protocols use this.
    static func resolve(given: String?, count: Int, generator: inout RequestIDGenerator) -> RequestIDValue {
        if count == 1, let given, isWellFormed(given) { return RequestIDValue(given: given) }
        return generator.nextValue()
    }

    static func isWellFormed(_ value: Slice<UnsafeRawBufferPointer>) -> Bool {
        (1...maxLength).contains(value.count) && value.allSatisfy(isAllowed)
    }

    static func isWellFormed(_ value: String) -> Bool {
        let utf8 = value.utf8
        guard (1...maxLength).contains(utf8.count) else { return false }
        return utf8.allSatisfy(isAllowed)
    }

    private static func isAllowed(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        case UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: ":"), UInt8(ascii: "+"), UInt8(ascii: "/"),
            UInt8(ascii: "="), UInt8(ascii: "@"), UInt8(ascii: "~"):
            true
        default:
            false
        }
    }
}

/// Makes request ids on one event loop: 16 hex digits drawn at random when the loop starts, a
/// dash, and a 12-digit hex counter (`3f9c0a7e51d2b846-00000000002a`).
///
/// The random part keeps ids apart across loops, workers and upgrades (two of them share a prefix
/// with odds of 1 in 2^64); the counter keeps them apart within a loop at the cost of an
/// increment, where a random id per request would cost a random draw each time. One generator per
/// loop, so no atomic is touched on the request path.
struct RequestIDGenerator {
    private let prefix: UInt64
    private var counter: UInt64 = 0

    init(prefix: UInt64 = UInt64.random(in: .min ... .max)) {
        self.prefix = prefix
    }

    static let length = 29

    /// The next id as a value: written as bytes where it goes (a String of 29 bytes is a heap
    /// allocation per request).
    mutating func nextValue() -> RequestIDValue {
        counter &+= 1
        return RequestIDValue(prefix: prefix, counter: counter)
    }

    /// The next id as text.
    mutating func next() -> String {
        nextValue().string
    }
}

/// A request's id without a String: the generator's (prefix and counter, rendered when written)
/// or the one the client sent.
struct RequestIDValue {
    private var prefix: UInt64 = 0
    private var counter: UInt64 = 0
    private var given: String?

    init(prefix: UInt64, counter: UInt64) {
        self.prefix = prefix
        self.counter = counter
    }

    init(given: String) {
        self.given = given
    }

    /// Calls `body` with the id's bytes (rendered on the stack for a generated id).
    func withBytes<T>(_ body: (UnsafeRawBufferPointer) -> T) -> T {
        if var given {
            return given.withUTF8 { body(UnsafeRawBufferPointer($0)) }
        }
        var text: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        return withUnsafeMutableBytes(of: &text) { raw in
            let digits: StaticString = "0123456789abcdef"
            digits.withUTF8Buffer { hex in
                for index in 0..<16 {
                    raw[index] = hex[Int((prefix >> UInt64(60 - 4 * index)) & 0xF)]
                }
                raw[16] = UInt8(ascii: "-")
                for index in 0..<12 {
                    raw[17 + index] = hex[Int((counter >> UInt64(44 - 4 * index)) & 0xF)]
                }
            }
            return body(UnsafeRawBufferPointer(rebasing: raw[0..<RequestIDGenerator.length]))
        }
    }

    /// The id as text (access log lines).
    var string: String {
        if let given { return given }
        return withBytes { String(decoding: $0, as: UTF8.self) }
    }
}

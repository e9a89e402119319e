@testable import Gateway
import NIOCore
import Testing

/// The access log's line formats, exactly, from records built by hand.
@Suite struct AccessLogFormatterTests {
    /// 2026-12-03T21:57:45.123Z.
    static let seconds = 1_796_335_065

    static func record() -> AccessLogRecord {
        var record = AccessLogRecord(
            seconds: seconds, nanoseconds: 123_456_789, started: .now(), requestID: "3f9c0a7e51d2b846-00000000002a",
            clientIP: "127.0.0.1", clientPort: 50312, method: "GET", path: "/cart?id=7", httpVersion: "HTTP/1.1")
        record.deployment = "shop"
        record.entryPoint = "default"
        record.backend = HostPort(host: "127.0.0.1", port: 8081)
        record.status = 200
        record.bytesIn = 3
        record.bytesOut = 512
        record.durationNanoseconds = 1_204_567
        return record
    }

    static func line(_ record: AccessLogRecord, _ format: AccessLogFormat) -> String {
        var formatter = AccessLogFormatter(format: format)
        var bytes: [UInt8] = []
        formatter.append(record, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    @Test func jsonLineHasEveryFieldInOrder() {
        #expect(
            Self.line(Self.record(), .json)
                == #"{"time":"2026-12-03T21:57:45.123Z","request_id":"3f9c0a7e51d2b846-00000000002a","client":"127.0.0.1:50312","method":"GET","path":"/cart?id=7","protocol":"HTTP/1.1","deployment":"shop","entry_point":"default","backend":"127.0.0.1:8081","status":200,"bytes_in":3,"bytes_out":512,"duration_ms":1.204,"reject_reason":null}"#
                + "\n")
    }

    @Test func jsonRejectionHasNullBackendAndTheReason() {
        var record = Self.record()
        record.backend = nil
        record.status = 503
        record.rejectReason = "global_limit"
        record.clientIP = "::1"
        record.httpVersion = "HTTP/2"
        let line = Self.line(record, .json)
        #expect(line.contains(#""client":"[::1]:50312""#), "\(line)")
        #expect(line.contains(#""protocol":"HTTP/2""#))
        #expect(line.contains(#""backend":null,"status":503"#))
        #expect(line.hasSuffix(#""reject_reason":"global_limit"}"# + "\n"))
    }

    @Test func jsonEscapesQuotesBackslashesAndControlBytes() {
        var record = Self.record()
        record.path = "/a\"b\\c\u{1}\u{7F}é"
        #expect(Self.line(record, .json).contains(#""path":"/a\"b\\c\u0001\u007fé""#))
    }

    @Test func combinedLineEndsWithIdAndDuration() {
        var record = Self.record()
        record.userAgent = "curl/7.88.1"
        #expect(
            Self.line(record, .combined)
                == #"127.0.0.1 - - [03/Dec/2026:21:57:45 +0000] "GET /cart?id=7 HTTP/1.1" 200 512 "-" "curl/7.88.1" 3f9c0a7e51d2b846-00000000002a 1.204"#
                + "\n")
    }

    @Test func combinedEscapesLikeNginx() {
        var record = Self.record()
        record.referer = "http://x/\"q\""
        record.userAgent = "a\\b\né"
        let line = Self.line(record, .combined)
        #expect(line.contains(#""http://x/\x22q\x22" "a\x5Cb\x0A\xC3\xA9""#), "\(line)")
        #expect(line.filter { $0 == "\n" }.count == 1)
    }

    @Test func datesAcrossYearsAndLeapDays() {
        #expect(AccessLogFormatter.civilDate(daysSince1970: 0) == (1970, 1, 1))
        #expect(AccessLogFormatter.civilDate(daysSince1970: 11_016) == (2000, 2, 29))
        #expect(AccessLogFormatter.civilDate(daysSince1970: 19_782) == (2024, 2, 29))
        #expect(AccessLogFormatter.civilDate(daysSince1970: 20_788) == (2026, 12, 1))
        #expect(AccessLogFormatter.civilDate(daysSince1970: -1) == (1969, 12, 31))
    }

    @Test func theDateFollowsTheSecondWhenOneFormatterWritesManyLines() {
        var formatter = AccessLogFormatter(format: .json)
        var bytes: [UInt8] = []
        var record = Self.record()
        formatter.append(record, to: &bytes)
        record.seconds += 86_400 + 3_661
        record.nanoseconds = 7_000_000
        formatter.append(record, to: &bytes)
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n")
        #expect(lines.count == 2)
        #expect(lines[1].hasPrefix(#"{"time":"2026-12-04T22:58:46.007Z""#), "\(lines[1])")
    }

    @Test func durationsInMillisecondsWithMicroseconds() {
        func text(_ nanoseconds: Int64) -> String {
            var bytes: [UInt8] = []
            AccessLogFormatter.appendMilliseconds(nanoseconds, to: &bytes)
            return String(decoding: bytes, as: UTF8.self)
        }
        #expect(text(0) == "0.000")
        #expect(text(87_000) == "0.087")
        #expect(text(1_204_500_000) == "1204.500")
    }
}

@testable import Gateway
import Testing

/// The request id rule: which incoming ids are kept, and what a generated one looks like.
@Suite struct RequestIDTests {
    static func resolve(_ fields: [(String, String)]) -> String {
        var generator = RequestIDGenerator(prefix: 0x0123_4567_89ab_cdef)
        let ids = fields.filter { $0.0.lowercased() == RequestID.headerName }.map(\.1)
        return RequestID.resolve(given: ids.first, count: ids.count, generator: &generator).string
    }

    static let generated = "0123456789abcdef-000000000001"

    @Test func aWellFormedIdIsKept() {
        #expect(Self.resolve([("X-Request-Id", "abc-123")]) == "abc-123")
        #expect(Self.resolve([("x-request-id", "f47ac10b-58cc-4372-a567-0e02b2c3d479")]) == "f47ac10b-58cc-4372-a567-0e02b2c3d479")
        #expect(Self.resolve([("X-REQUEST-ID", "tenant:42/req=AbC+9_~.@x")]) == "tenant:42/req=AbC+9_~.@x")
        #expect(Self.resolve([("x-request-id", String(repeating: "a", count: 128))]).count == 128)
    }

    @Test func aMissingOrMalformedIdIsReplaced() {
        #expect(Self.resolve([]) == Self.generated)
        #expect(Self.resolve([("x-request-id", "")]) == Self.generated)
        #expect(Self.resolve([("x-request-id", "has space")]) == Self.generated)
        #expect(Self.resolve([("x-request-id", "quote\"")]) == Self.generated)
        #expect(Self.resolve([("x-request-id", "ünicode")]) == Self.generated)
        #expect(Self.resolve([("x-request-id", "tab\there")]) == Self.generated)
        #expect(Self.resolve([("x-request-id", String(repeating: "a", count: 129))]) == Self.generated)
    }

    @Test func twoIdsNameNoRequest() {
        #expect(Self.resolve([("x-request-id", "one"), ("X-Request-Id", "two")]) == Self.generated)
    }

    @Test func generatedIdsAreWellFormedAndDistinct() {
        var generator = RequestIDGenerator()
        let ids = (0..<1000).map { _ in generator.next() }
        #expect(Set(ids).count == 1000)
        #expect(ids.allSatisfy { $0.utf8.count == RequestIDGenerator.length && RequestID.isWellFormed($0) })
        // Loops (and workers) draw their own prefixes.
        var other = RequestIDGenerator()
        #expect(other.next().prefix(16) != ids[0].prefix(16))
        var fixed = RequestIDGenerator(prefix: 0xFFFF_0000_0000_0001)
        #expect(fixed.next() == "ffff000000000001-000000000001")
        #expect(fixed.next() == "ffff000000000001-000000000002")
    }
}

import Testing
@testable import Supervisor

@Suite struct OutputRingTests {
    static func ring(_ count: Int, capacity: Int = 1000, maxBytes: Int = 1 << 20) -> OutputRing {
        var ring = OutputRing(capacity: capacity, maxBytes: maxBytes)
        for index in 1...count { ring.append("line \(index)", stream: index % 2 == 0 ? .stderr : .stdout, pid: 7, time: Double(index)) }
        return ring
    }

    @Test func keepsTheLastThousandLinesWithSequenceNumbers() {
        let ring = Self.ring(1500)
        #expect(ring.count == 1000)
        #expect(ring.lastSequence == 1500)
        let all = ring.lines(last: 5000)
        #expect(all.count == 1000)
        #expect(all.first?.sequence == 501)
        #expect(all.first?.text == "line 501")
        #expect(all.last == OutputRing.Line(sequence: 1500, time: 1500, stream: .stderr, pid: 7, text: "line 1500"))
        #expect(ring.lines(last: 3).map(\.text) == ["line 1498", "line 1499", "line 1500"])
        #expect(ring.lines(last: 0).isEmpty)
    }

    @Test func afterGivesOnlyNewerLines() {
        let ring = Self.ring(20)
        #expect(ring.lines(last: 100, after: 17).map(\.sequence) == [18, 19, 20])
        #expect(ring.lines(last: 2, after: 10).map(\.sequence) == [19, 20], "the newest of those")
        #expect(ring.lines(last: 100, after: 20).isEmpty)
        #expect(Self.ring(1200).lines(last: 1000, after: 5).first?.sequence == 201, "dropped lines are simply missing")
    }

    /// 1,000 lines of 16 KiB would be 16 MiB per instance; the byte cap keeps it at maxBytes.
    @Test func theByteCapDropsOldLinesFirst() {
        var ring = OutputRing(capacity: 1000, maxBytes: 100)
        for index in 1...10 { ring.append(String(repeating: "\(index % 10)", count: 30), stream: .stdout, pid: 1, time: 0) }
        #expect(ring.count == 3)
        #expect(ring.bytes == 90)
        #expect(ring.lines(last: 10).map(\.sequence) == [8, 9, 10])
        // A single line above the cap is still kept: the newest line is never lost.
        ring.append(String(repeating: "x", count: 500), stream: .stdout, pid: 1, time: 0)
        #expect(ring.count == 1)
        #expect(ring.lines(last: 10).map(\.sequence) == [11])
    }

    @Test func aPageIsBoundedInBytesNewestKept() {
        let ring = Self.ring(100)
        let page = ring.lines(last: 100, maxBytes: 25)  // "line 100" is 8 bytes, "line 99" 7
        #expect(page.map(\.text) == ["line 98", "line 99", "line 100"])
    }

    /// The storage compacts as it goes: a long run keeps the same answers.
    @Test func longRunsStayConsistent() {
        var ring = OutputRing(capacity: 10, maxBytes: 1 << 20)
        for index in 1...10_000 { ring.append("\(index)", stream: .stdout, pid: 1, time: 0) }
        #expect(ring.lines(last: 10).map(\.text) == (9991...10_000).map(String.init))
    }
}

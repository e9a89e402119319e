import Testing

@testable import Gateway

@Suite struct H2StreamHistoryTests {
    typealias Header = H2FrameScanner.FrameHeader

    static func headers(_ id: Int32, endStream: Bool = false, endHeaders: Bool = true) -> Header {
        Header(length: 10, type: 0x1, flags: (endStream ? 0x1 : 0) | (endHeaders ? 0x4 : 0), streamID: id)
    }

    static func data(_ id: Int32, endStream: Bool = false) -> Header {
        Header(length: 4, type: 0x0, flags: endStream ? 0x1 : 0, streamID: id)
    }

    static func continuation(_ id: Int32, endHeaders: Bool = true) -> Header {
        Header(length: 4, type: 0x9, flags: endHeaders ? 0x4 : 0, streamID: id)
    }

    static func rst(_ id: Int32) -> Header { Header(length: 4, type: 0x3, flags: 0, streamID: id) }
    static func priority(_ id: Int32) -> Header { Header(length: 5, type: 0x2, flags: 0, streamID: id) }
    static func windowUpdate(_ id: Int32) -> Header { Header(length: 4, type: 0x8, flags: 0, streamID: id) }

    @Test func aRequestWithBodyAndTrailersPasses() {
        var history = H2StreamHistory()
        for frame in [Self.headers(1), Self.data(1), Self.windowUpdate(1), Self.headers(1, endStream: true)] {
            #expect(history.receive(frame) == nil)
        }
        #expect(history.hasEnded(1))
    }

    @Test func dataOrHeadersAfterEndStreamIsStreamClosed() {
        var history = H2StreamHistory()
        #expect(history.receive(Self.headers(1, endStream: true)) == nil)
        #expect(history.receive(Self.data(1)) == .frameAfterEnd(frameType: 0x0, streamID: 1))
        #expect(history.receive(Self.headers(1, endStream: true)) == .frameAfterEnd(frameType: 0x1, streamID: 1))
        #expect(history.receive(Self.data(1)).map(\.errorCode) == 0x5)

        var afterData = H2StreamHistory()
        #expect(afterData.receive(Self.headers(3)) == nil)
        #expect(afterData.receive(Self.data(3, endStream: true)) == nil)
        #expect(afterData.receive(Self.headers(3, endStream: true)) == .frameAfterEnd(frameType: 0x1, streamID: 3))
    }

    @Test func dataAfterTheClientsResetIsStreamClosed() {
        var history = H2StreamHistory()
        #expect(history.receive(Self.headers(1)) == nil)
        #expect(history.receive(Self.rst(1)) == nil)
        #expect(history.receive(Self.data(1)) == .frameAfterEnd(frameType: 0x0, streamID: 1))
    }

    /// What may still come on an ended stream: PRIORITY, WINDOW_UPDATE, RST_STREAM.
    @Test func controlFramesOnAnEndedStreamPass() {
        var history = H2StreamHistory()
        #expect(history.receive(Self.headers(1, endStream: true)) == nil)
        for frame in [Self.priority(1), Self.windowUpdate(1), Self.rst(1)] {
            #expect(history.receive(frame) == nil)
        }
    }

    /// END_STREAM on a HEADERS frame whose block goes on: the CONTINUATIONs are part of it.
    @Test func theStreamEndsWithTheHeaderBlock() {
        var history = H2StreamHistory()
        #expect(history.receive(Self.headers(1, endStream: true, endHeaders: false)) == nil)
        #expect(!history.hasEnded(1))
        #expect(history.receive(Self.continuation(1, endHeaders: false)) == nil)
        #expect(history.receive(Self.continuation(1)) == nil)
        #expect(history.hasEnded(1))
        #expect(history.receive(Self.data(1)) == .frameAfterEnd(frameType: 0x0, streamID: 1))
    }

    @Test func headersBelowTheHighestIDOnAnUnusedIDIsProtocolError() {
        var history = H2StreamHistory()
        #expect(history.receive(Self.headers(5, endStream: true)) == nil)
        let violation = history.receive(Self.headers(3, endStream: true))
        #expect(violation == .streamIDNotIncreasing(streamID: 3, highest: 5))
        #expect(violation?.errorCode == 0x1)

        var later = H2StreamHistory()
        for id: Int32 in [1, 3, 9] { #expect(later.receive(Self.headers(id, endStream: true)) == nil) }
        #expect(later.receive(Self.headers(7)) == .streamIDNotIncreasing(streamID: 7, highest: 9))
        #expect(later.receive(Self.data(5)) == .dataOnSkippedStream(streamID: 5))
    }

    /// A stream the gateway reset while the client was still sending: what the client sent
    /// before it saw the reset (trailers, DATA) is let through for nghttp2 to ignore.
    @Test func framesOnAStreamTheClientDidNotEndPass() {
        var history = H2StreamHistory()
        #expect(history.receive(Self.headers(1)) == nil)
        #expect(history.receive(Self.headers(3, endStream: true)) == nil)
        #expect(history.receive(Self.data(1)) == nil)
        #expect(history.receive(Self.headers(1, endStream: true)) == nil)
    }

    /// Stream 0, even ids and ids above the highest are nghttp2's to judge.
    @Test func framesNghttp2JudgesPass() {
        var history = H2StreamHistory()
        #expect(history.receive(Self.headers(3, endStream: true)) == nil)
        #expect(history.receive(Self.data(0)) == nil)
        #expect(history.receive(Self.headers(2)) == nil)
        #expect(history.receive(Self.data(4)) == nil)
        #expect(history.receive(Self.data(7)) == nil)
        #expect(history.receive(Self.priority(11)) == nil)
        #expect(history.highest == 3, "PRIORITY and DATA open no stream")
        #expect(history.receive(Self.headers(Int32.max)) == nil)
        #expect(history.receive(Self.headers(5)) == .streamIDNotIncreasing(streamID: 5, highest: Int32.max))
    }

    /// Bounded: the oldest ended streams and skipped runs are forgotten, and then let through.
    @Test func memoryIsBounded() {
        var history = H2StreamHistory(endedCapacity: 4, skippedCapacity: 2)
        for index: Int32 in 0..<10 {
            #expect(history.receive(Self.headers(4 * index + 1, endStream: true)) == nil)  // skips 4 * index + 3
        }
        #expect(history.receive(Self.data(37)) == .frameAfterEnd(frameType: 0x0, streamID: 37))
        #expect(history.receive(Self.data(25)) == .frameAfterEnd(frameType: 0x0, streamID: 25))
        #expect(history.receive(Self.data(21)) == nil, "forgotten")
        #expect(history.receive(Self.headers(35)) == .streamIDNotIncreasing(streamID: 35, highest: 37))
        #expect(history.receive(Self.headers(31)) == .streamIDNotIncreasing(streamID: 31, highest: 37))
        #expect(history.receive(Self.headers(27)) == nil, "forgotten")
    }
}

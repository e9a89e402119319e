import Testing

@testable import Gateway

/// The HTTP/1.1 connection's state machine without a channel: what bytes mean in each state,
/// when reads wait, and whether the connection carries another request.
@Suite struct HTTP1ConnectionMachineTests {
    @Test func aKeepAliveExchangeReturnsToIdle() {
        var machine = HTTP1ConnectionMachine()
        #expect(machine.inboundAction() == .scanHead)
        machine.requestHead(http10: false, headRequest: false, keepAlive: true, body: .ended)
        #expect(machine.isAwaitingBackend)
        #expect(machine.holdsReads(backendWritable: true, bytesWaiting: false))
        machine.backendAttached()
        #expect(machine.isProxying)
        // The body has ended: later bytes are the next request's and wait.
        #expect(machine.inboundAction() == .wait)
        #expect(!machine.holdsReads(backendWritable: true, bytesWaiting: false))
        #expect(machine.holdsReads(backendWritable: true, bytesWaiting: true))
        #expect(machine.responseHeadWritten(local: false) == false)
        machine.responseEndWriting()
        #expect(machine.inboundAction() == .wait)
        #expect(machine.responseEndWritten() == .becameIdle)
        #expect(machine.isIdle)
        #expect(machine.requestsServed == 1)
    }

    @Test func bodyBytesFlowUntilTheBodyEnds() {
        var machine = HTTP1ConnectionMachine()
        machine.requestHead(http10: false, headRequest: false, keepAlive: true, body: .length(remaining: 10))
        #expect(machine.inboundAction() == .body)
        machine.backendAttached()
        #expect(machine.holdsReads(backendWritable: false, bytesWaiting: false))
        #expect(!machine.holdsReads(backendWritable: true, bytesWaiting: true))
        machine.bodyProgress(.length(remaining: 4))
        #expect(machine.request?.body == .length(remaining: 4))
        #expect(machine.bodyEnded() == .none)
        #expect(machine.inboundAction() == .wait)
    }

    @Test func anAnswerBeforeTheBodyEndedDiscardsTheRestAndCloses() {
        var machine = HTTP1ConnectionMachine()
        machine.requestHead(http10: false, headRequest: false, keepAlive: true, body: .chunked)
        // A local answer (say 413) while the body is still coming: the connection cannot carry
        // another request, since the rest of this body is not read to its end by a parser.
        #expect(machine.responseHeadWritten(local: true) == true)
        machine.responseEndWriting()
        #expect(machine.inboundAction() == .discardBody)
        #expect(machine.responseEndWritten() == .none)
        #expect(machine.bodyEnded() == .close)
        #expect(machine.isClosed)
    }

    @Test func theBodyEndingBeforeTheAnswerIsWrittenClosesAfterTheWrite() {
        var machine = HTTP1ConnectionMachine()
        machine.requestHead(http10: false, headRequest: false, keepAlive: true, body: .length(remaining: 3))
        _ = machine.responseHeadWritten(local: true)
        machine.responseEndWriting()
        #expect(machine.bodyEnded() == .none)
        #expect(machine.responseEndWritten() == .close)
    }

    @Test func http10WithoutKeepAliveAndDrainsClose() {
        var machine = HTTP1ConnectionMachine()
        machine.requestHead(http10: true, headRequest: false, keepAlive: false, body: .ended)
        machine.backendAttached()
        #expect(machine.responseHeadWritten(local: false) == true)
        machine.responseEndWriting()
        #expect(machine.responseEndWritten() == .close)

        var draining = HTTP1ConnectionMachine()
        draining.requestHead(http10: false, headRequest: false, keepAlive: true, body: .ended)
        draining.mustClose()
        #expect(draining.responseHeadWritten(local: false) == true)
    }

    @Test func aRetryWaitsForABackendAgain() {
        var machine = HTTP1ConnectionMachine()
        machine.requestHead(http10: false, headRequest: false, keepAlive: true, body: .ended)
        machine.backendAttached()
        // The backend closed before answering: the request goes on another connection.
        machine.awaitBackend()
        #expect(machine.isAwaitingBackend)
        #expect(machine.holdsReads(backendWritable: true, bytesWaiting: false))
        machine.backendAttached()
        #expect(machine.isProxying)
    }

    @Test func aBackendAnsweringDuringTheUploadKeepsTheConnection() {
        // An echo streams the body back while it comes: the connection goes on when both end.
        var machine = HTTP1ConnectionMachine()
        machine.requestHead(http10: false, headRequest: false, keepAlive: true, body: .length(remaining: 100))
        machine.backendAttached()
        #expect(machine.responseHeadWritten(local: false) == false)
        #expect(machine.bodyEnded() == .none)
        machine.responseEndWriting()
        #expect(machine.responseEndWritten() == .becameIdle)
    }

    @Test func aTunnelPassesBytesAndHoldsOnBackpressure() {
        var machine = HTTP1ConnectionMachine()
        machine.requestHead(http10: false, headRequest: false, keepAlive: true, body: .ended)
        machine.backendAttached()
        machine.tunnelStarted()
        #expect(machine.inboundAction() == .tunnel)
        #expect(machine.holdsReads(backendWritable: false, bytesWaiting: false))
        #expect(!machine.holdsReads(backendWritable: true, bytesWaiting: false))
        machine.closed()
        #expect(machine.inboundAction() == .drop)
    }
}

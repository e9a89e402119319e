import NIOCore
import Testing

@testable import Gateway

/// The connection's life without OpenSSL or a channel: which events lead where.
@Suite struct TLSServerStateMachineTests {
    /// A machine whose handshake has completed.
    static func open() -> TLSServerStateMachine {
        var machine = TLSServerStateMachine()
        _ = machine.channelActive()
        _ = machine.ciphertextReceived()
        _ = machine.handshakeCompleted()
        return machine
    }

    @Test func theHandshakeStartsOnceWhenActive() {
        var machine = TLSServerStateMachine()
        #expect(machine.channelActive() == true)
        #expect(machine.channelActive() == false)
        #expect(machine.state == .handshaking(receivedBytes: false))
        #expect(machine.ciphertextReceived() == .handshake)
        #expect(machine.state == .handshaking(receivedBytes: true))
    }

    @Test func aFlushDuringTheHandshakeWaitsForIt() {
        var machine = TLSServerStateMachine()
        _ = machine.channelActive()
        #expect(machine.writeRequested() == .buffer)
        #expect(machine.flushRequested() == .wait)
        #expect(machine.handshakeCompleted() == true)
        #expect(machine.state == .open)
        #expect(machine.flushRequested() == .encrypt)
        #expect(machine.ciphertextReceived() == .decrypt)
    }

    @Test func withoutAFlushNothingIsEncryptedAtHandshakeEnd() {
        var machine = TLSServerStateMachine()
        _ = machine.channelActive()
        #expect(machine.writeRequested() == .buffer)
        #expect(machine.handshakeCompleted() == false)
    }

    @Test func closingBeforeTheHandshakeSendsNoCloseNotify() {
        var machine = TLSServerStateMachine()
        _ = machine.channelActive()
        #expect(machine.closeRequested(mode: .all) == .close)
        #expect(machine.state == .closing)
        #expect(machine.closeRequested(mode: .all) == .joinClose)
        #expect(machine.writeRequested() == .fail)
        #expect(machine.flushRequested() == .failWrites)
        #expect(machine.ciphertextReceived() == .discard)
    }

    @Test func closingWhenOpenSendsCloseNotify() {
        var machine = Self.open()
        #expect(machine.closeRequested(mode: .output) == .unsupported)
        #expect(machine.closeRequested(mode: .input) == .forward)
        #expect(machine.state == .open)
        #expect(machine.closeRequested(mode: .all) == .sendCloseNotifyAndClose)
        #expect(machine.closeRequested(mode: .all) == .joinClose)
        #expect(machine.channelInactive(receivedCloseNotify: false) == .none)
        #expect(machine.closeRequested(mode: .all) == .forward)
    }

    @Test func thePeersCloseNotifyIsAnsweredOnce() {
        var machine = Self.open()
        #expect(machine.closeNotifyReceived() == true)
        #expect(machine.closeNotifyReceived() == false)
        #expect(machine.channelInactive(receivedCloseNotify: true) == .none)
    }

    @Test func eofAfterTheHandshakeIsUncleanWithoutCloseNotify() {
        var unclean = Self.open()
        #expect(unclean.channelInactive(receivedCloseNotify: false) == .unclean)
        var clean = Self.open()
        #expect(clean.channelInactive(receivedCloseNotify: true) == .none)
    }

    @Test func halfClosedInputIsReportedOnceThenClosed() {
        var machine = Self.open()
        #expect(machine.inputClosed(receivedCloseNotify: false) == .unclean)
        #expect(machine.state == .closing)
        #expect(machine.channelInactive(receivedCloseNotify: false) == .none)

        var clean = Self.open()
        #expect(clean.inputClosed(receivedCloseNotify: true) == .clean)
    }

    @Test func eofDuringTheHandshakeCountsOnlyWhenTheClientSentSomething() {
        var silent = TLSServerStateMachine()
        _ = silent.channelActive()
        #expect(silent.channelInactive(receivedCloseNotify: false) == .handshakeAbandoned(counted: false))

        var started = TLSServerStateMachine()
        _ = started.channelActive()
        _ = started.ciphertextReceived()
        #expect(started.channelInactive(receivedCloseNotify: false) == .handshakeAbandoned(counted: true))
    }

    @Test func aFailureClosesOnce() {
        var machine = Self.open()
        #expect(machine.failed() == true)
        #expect(machine.failed() == false)
        #expect(machine.closeRequested(mode: .all) == .joinClose)
        machine.handlerRemoved()
        #expect(machine.state == .closed)
        #expect(machine.failed() == false)
    }
}

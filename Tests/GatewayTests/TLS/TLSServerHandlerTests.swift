import COpenSSL
import NIOCore
import NIOEmbedded
import Testing

@testable import Gateway

/// The handler on an `EmbeddedChannel`, with a hand-stepped client (`TestTLSClient`) choosing
/// exactly which bytes arrive in which read.
@Suite final class TLSServerHandlerTests {
    let context: TLSServerContext

    /// Two certificates: `a.test` (the default) and `b.test`; ALPN `h2`, then `http/1.1`.
    init() throws {
        let certificates = try TestCertificate.shared()
        self.context = try TLSServerContext(certificates: [certificates.a, certificates.b], alpn: ["h2", "http/1.1"])
    }

    struct Fixture {
        let channel: EmbeddedChannel
        let handler: TLSServerHandler
        let counters: TLSCounters
        let recorder: TLSRecorder
    }

    /// The TLS handler, then a `TLSRecorder`, on an active channel.
    func makeFixture(addAfterConnecting: Bool = false) throws -> Fixture {
        let counters = TLSCounters()
        let handler = self.context.makeHandler(counters: counters)
        let recorder = TLSRecorder()
        let channel = EmbeddedChannel()
        if addAfterConnecting {
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 443)).wait()
        }
        try channel.pipeline.syncOperations.addHandlers([handler, recorder])
        if !addAfterConnecting {
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 443)).wait()
        }
        return Fixture(channel: channel, handler: handler, counters: counters, recorder: recorder)
    }

    /// Moves bytes between client and server until the client's handshake is complete. With
    /// `deliverLastFlight: false` the client's last flight (its Finished, in TLS 1.3) stays in its
    /// output for the test to send.
    static func handshake(_ client: TestTLSClient, _ channel: EmbeddedChannel, deliverLastFlight: Bool = true) throws {
        for _ in 0..<6 {
            let done = try client.handshake()
            if done && !deliverLastFlight { return }
            try Self.deliver(client, channel)
            if done { return }
        }
        throw TestSupportError("the handshake did not complete")
    }

    /// Sends whatever the client has written to the server, and the server's answer back.
    static func deliver(_ client: TestTLSClient, _ channel: EmbeddedChannel) throws {
        let output = client.takeOutput()
        if output.readableBytes > 0 {
            try channel.writeInbound(output)
        }
        Self.returnToClient(client, channel)
    }

    static func returnToClient(_ client: TestTLSClient, _ channel: EmbeddedChannel) {
        while let bytes = try? channel.readOutbound(as: ByteBuffer.self) {
            client.receive(bytes)
        }
    }

    // MARK: Handshake and protocol choice

    @Test func plaintextInTheSameReadAsFinishedReachesHandlersAddedOnTheHandshakeEvent() throws {
        let counters = TLSCounters()
        let collector = TLSRecorder()
        let switcher = ProtocolSwitcher(installing: collector)
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandlers([self.context.makeHandler(counters: counters), switcher])
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 443)).wait()

        let client = try TestTLSClient(serverName: "a.test", alpn: ["http/1.1"])
        try Self.handshake(client, channel, deliverLastFlight: false)
        try client.write("GET / HTTP/1.1\r\nhost: a.test\r\n\r\n")
        // One read: the client's Finished and its first request.
        try channel.writeInbound(client.takeOutput())

        #expect(collector.log == ["handshake http/1.1", "read GET / HTTP/1.1\r\nhost: a.test\r\n\r\n"])
        #expect(!switcher.leaked)
        #expect(throws: (any Error).self) { try channel.pipeline.syncOperations.handler(type: ProtocolSwitcher.self) }
        #expect(counters.snapshot().handshakesCompleted == 1)
        #expect(counters.snapshot().alpnHTTP11 == 1)
    }

    @Test func theHandshakeEventComesFirstAndCarriesWhatWasNegotiated() throws {
        let fixture = try self.makeFixture()
        let client = try TestTLSClient(serverName: "b.test", alpn: ["http/1.1", "h2"])
        try Self.handshake(client, fixture.channel)
        try client.write("hello")
        try Self.deliver(client, fixture.channel)

        let event = try #require(fixture.recorder.events.first)
        #expect(event.alpn == "h2")  // the server's preference, not the client's
        #expect(event.serverName == "b.test")
        #expect(event.version == "TLSv1.3")
        #expect(!event.cipher.isEmpty)
        #expect(fixture.recorder.log == ["handshake h2", "read hello"])
        #expect(fixture.handler.negotiatedALPN == "h2")
        #expect(fixture.handler.serverName == "b.test")
        #expect(client.negotiatedALPN == "h2")
        #expect(client.peerSubject == "CN=b.test")
        #expect(fixture.counters.snapshot().alpnH2 == 1)
    }

    @Test func sniChoosesTheCertificateAndFallsBackToTheDefault() throws {
        let cases: [(String?, String)] = [
            ("b.test", "CN=b.test"), ("x.b.test", "CN=b.test"), ("a.test", "CN=a.test"),
            ("other.test", "CN=a.test"), (nil, "CN=a.test"),
        ]
        for (name, subject) in cases {
            let fixture = try self.makeFixture()
            let client = try TestTLSClient(serverName: name)
            try Self.handshake(client, fixture.channel)
            #expect(client.peerSubject == subject, "server name \(name ?? "none")")
        }
    }

    @Test func withoutACommonProtocolTheHandshakeGoesOnWithoutALPN() throws {
        let fixture = try self.makeFixture()
        let client = try TestTLSClient(serverName: "a.test", alpn: ["spdy/3"])
        try Self.handshake(client, fixture.channel)
        #expect(fixture.recorder.events.first?.alpn == nil)
        #expect(client.negotiatedALPN == nil)
        #expect(fixture.counters.snapshot().alpnNone == 1)
    }

    @Test func tls12Works() throws {
        let fixture = try self.makeFixture(addAfterConnecting: true)
        let client = try TestTLSClient(serverName: "a.test", alpn: ["http/1.1"], version: TLS1_2_VERSION)
        try Self.handshake(client, fixture.channel)
        #expect(fixture.recorder.events.first?.version == "TLSv1.2")
        try client.write("ping")
        try Self.deliver(client, fixture.channel)
        #expect(fixture.recorder.plaintext == "ping")
    }

    @Test func garbageFailsTheHandshakeAndCloses() throws {
        let fixture = try self.makeFixture()
        try fixture.channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nhost: a.test\r\n\r\n"))
        #expect(fixture.counters.snapshot().handshakesFailed == 1)
        #expect(fixture.recorder.events.isEmpty)
        let error = try #require(fixture.recorder.errors.first as? TLSError)
        guard case .openSSL(let operation, let reasons) = error else {
            Issue.record("unexpected error \(error)")
            return
        }
        #expect(operation == "handshake")
        #expect(!reasons.isEmpty)
        #expect(!fixture.channel.isActive)
        #expect(fixture.recorder.log.last == "inactive")
    }

    // MARK: Data

    @Test func writesBeforeTheHandshakeWaitForIt() throws {
        let fixture = try self.makeFixture()
        let written = fixture.channel.writeAndFlush(ByteBuffer(string: "server speaks first"))
        let empty = fixture.channel.writeAndFlush(ByteBuffer())
        #expect(try fixture.channel.readOutbound(as: ByteBuffer.self) == nil)

        let client = try TestTLSClient(serverName: "a.test")
        try Self.handshake(client, fixture.channel)
        try Self.deliver(client, fixture.channel)
        #expect(client.read().plaintext == "server speaks first")
        try written.wait()
        try empty.wait()
    }

    @Test func writesGoOutOnFlushAndZeroLengthWritesSucceed() throws {
        let fixture = try self.makeFixture()
        let client = try TestTLSClient(serverName: "a.test")
        try Self.handshake(client, fixture.channel)
        _ = client.read()  // session tickets

        let zero = fixture.channel.writeAndFlush(ByteBuffer())
        try zero.wait()
        let first = fixture.channel.write(ByteBuffer(string: "one,"))
        let second = fixture.channel.write(ByteBuffer(string: "two"))
        #expect(try fixture.channel.readOutbound(as: ByteBuffer.self) == nil)
        fixture.channel.flush()
        try first.wait()
        try second.wait()
        Self.returnToClient(client, fixture.channel)
        #expect(client.read().plaintext == "one,two")
    }

    @Test func largeWritesArriveIntact() throws {
        let fixture = try self.makeFixture()
        let client = try TestTLSClient(serverName: "a.test")
        try Self.handshake(client, fixture.channel)
        let text = String((0..<200_000).map { Character(UnicodeScalar(UInt8(97 + $0 % 26))) })
        try fixture.channel.writeAndFlush(ByteBuffer(string: text)).wait()
        Self.returnToClient(client, fixture.channel)
        #expect(client.read().plaintext == text)

        try client.write(text)
        try Self.deliver(client, fixture.channel)
        #expect(fixture.recorder.plaintext == text)
        #expect(fixture.recorder.reads > 1)  // one per record
    }

    @Test func renegotiationIsRefusedWithAnAlert() throws {
        let fixture = try self.makeFixture()
        let client = try TestTLSClient(serverName: "a.test", version: TLS1_2_VERSION)
        try Self.handshake(client, fixture.channel)

        try client.renegotiate()
        _ = try client.handshake()  // a new ClientHello
        try fixture.channel.writeInbound(client.takeOutput())
        // The server answers with a no_renegotiation alert (record type 21), nothing else.
        let answer = try #require(try fixture.channel.readOutbound(as: ByteBuffer.self))
        #expect(answer.getInteger(at: answer.readerIndex, as: UInt8.self) == 21)
        #expect(fixture.recorder.events.count == 1)

        // OpenSSL's client takes that as fatal and says so; the server closes.
        client.receive(answer)
        #expect(throws: TestSupportError.self) { try client.handshake() }
        try fixture.channel.writeInbound(client.takeOutput())
        #expect(!fixture.channel.isActive)
        #expect(fixture.recorder.errors.contains { ($0 as? TLSError).map { "\($0)".contains("read failed") } ?? false })
    }

    // MARK: Ending

    @Test func closeSendsCloseNotifyThenCloses() throws {
        let fixture = try self.makeFixture()
        let client = try TestTLSClient(serverName: "a.test")
        try Self.handshake(client, fixture.channel)
        _ = client.read()

        let unwritten = fixture.channel.write(ByteBuffer(string: "never flushed"))
        let output = fixture.channel.close(mode: .output)
        #expect(throws: ChannelError.operationUnsupported) { try output.wait() }

        try fixture.channel.close().wait()
        #expect(throws: ChannelError.ioOnClosedChannel) { try unwritten.wait() }
        Self.returnToClient(client, fixture.channel)
        #expect(client.read().closeNotify)
        #expect(!fixture.channel.isActive)
        #expect(fixture.recorder.errors.isEmpty)
        #expect(fixture.counters.snapshot().uncleanShutdowns == 0)
    }

    @Test func writePromisesFollowTheCiphertextAndCloseIsBounded() throws {
        let counters = TLSCounters()
        let staller = StallingWriter()
        let recorder = TLSRecorder()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandlers([
            staller, TLSServerHandler(context: self.context, counters: counters, closeTimeout: .seconds(2)), recorder,
        ])
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 443)).wait()
        let client = try TestTLSClient(serverName: "a.test")
        try Self.handshake(client, channel)

        // A peer that stops reading: the ciphertext write does not complete, nor does the
        // plaintext write it carries.
        staller.stalling = true
        let written = channel.writeAndFlush(ByteBuffer(string: "stuck"))
        var completed = false
        written.assumeIsolated().whenComplete { _ in completed = true }
        #expect(!completed)
        staller.release()
        #expect(completed)

        // Our close_notify cannot be written either: close anyway once closeTimeout has passed.
        staller.stalling = true
        let closed = channel.close()
        var closeCompleted = false
        closed.assumeIsolated().whenComplete { _ in closeCompleted = true }
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(channel.isActive)
        #expect(!closeCompleted)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(!channel.isActive)
        #expect(closeCompleted)
        #expect(recorder.errors.isEmpty)
    }

    @Test func closeBeforeTheHandshakeJustCloses() throws {
        let fixture = try self.makeFixture()
        let pending = fixture.channel.writeAndFlush(ByteBuffer(string: "waiting for the handshake"))
        try fixture.channel.close().wait()
        #expect(throws: ChannelError.ioOnClosedChannel) { try pending.wait() }
        #expect(try fixture.channel.readOutbound(as: ByteBuffer.self) == nil)
        #expect(fixture.counters.snapshot() == TLSCounters.Snapshot())
    }

    @Test func thePeersCloseNotifyIsAnsweredAndCountedAsClean() throws {
        let fixture = try self.makeFixture()
        let client = try TestTLSClient(serverName: "a.test")
        try Self.handshake(client, fixture.channel)
        try client.write("last words")
        client.shutdown()
        try Self.deliver(client, fixture.channel)

        #expect(fixture.recorder.plaintext == "last words")
        let received = client.read()
        #expect(received.closeNotify)
        #expect(!fixture.channel.isActive)
        #expect(fixture.recorder.errors.isEmpty)
        #expect(fixture.counters.snapshot().cleanShutdowns == 1)
        #expect(fixture.counters.snapshot().uncleanShutdowns == 0)
    }

    @Test func eofWithoutCloseNotifyIsReportedBeforeInactive() throws {
        let fixture = try self.makeFixture()
        let client = try TestTLSClient(serverName: "a.test")
        try Self.handshake(client, fixture.channel)
        fixture.channel.pipeline.fireChannelInactive()
        #expect(fixture.recorder.log.suffix(2) == ["error \(TLSError.uncleanShutdown)", "inactive"])
        #expect(fixture.counters.snapshot().uncleanShutdowns == 1)
        #expect(fixture.counters.snapshot().cleanShutdowns == 0)
    }

    @Test func halfClosedInputWithoutCloseNotifyIsReportedAndCloses() throws {
        let fixture = try self.makeFixture()
        let client = try TestTLSClient(serverName: "a.test")
        try Self.handshake(client, fixture.channel)
        _ = client.read()
        fixture.channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        #expect(fixture.recorder.log.suffix(2) == ["error \(TLSError.uncleanShutdown)", "inactive"])
        #expect(fixture.counters.snapshot().uncleanShutdowns == 1)
        Self.returnToClient(client, fixture.channel)
        #expect(client.read().closeNotify)
        #expect(!fixture.channel.isActive)
    }

    @Test func eofDuringTheHandshakeIsAFailedHandshakeOnlyWhenItStarted() throws {
        let silent = try self.makeFixture()
        silent.channel.pipeline.fireChannelInactive()
        #expect(silent.counters.snapshot().handshakesFailed == 0)
        #expect(silent.recorder.errors.isEmpty)

        let started = try self.makeFixture()
        let client = try TestTLSClient(serverName: "a.test")
        _ = try client.handshake()
        try started.channel.writeInbound(client.takeOutput())
        started.channel.pipeline.fireChannelInactive()
        #expect(started.counters.snapshot().handshakesFailed == 1)
        #expect(started.recorder.log.suffix(2) == ["error \(TLSError.eofDuringHandshake)", "inactive"])
    }

    @Test func removingTheHandlerFailsWritesStillWaiting() throws {
        let fixture = try self.makeFixture()
        let pending = fixture.channel.writeAndFlush(ByteBuffer(string: "waiting for the handshake"))
        try fixture.channel.pipeline.syncOperations.removeHandler(fixture.handler).wait()
        #expect(throws: TLSError.handlerRemoved) { try pending.wait() }
    }
}

/// Records, in order, what reaches the end of the pipeline.
final class TLSRecorder: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private(set) var log: [String] = []
    private(set) var events: [TLSHandshakeCompleted] = []
    private(set) var errors: [any Error] = []
    private(set) var plaintext = ""
    private(set) var reads = 0

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let text = String(buffer: self.unwrapInboundIn(data))
        self.plaintext += text
        self.reads += 1
        if self.log.last?.hasPrefix("read ") == true {
            self.log[self.log.count - 1] += text
        } else {
            self.log.append("read " + text)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSHandshakeCompleted {
            self.events.append(event)
            self.log.append("handshake \(event.alpn ?? "none")")
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.errors.append(error)
        self.log.append("error \(error)")
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.log.append("inactive")
    }
}

/// Replaces itself with another handler when the handshake completes, as a protocol switch by
/// ALPN does. Any plaintext that reaches it went to the old pipeline: a bug.
final class ProtocolSwitcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private let replacement: any ChannelHandler
    private(set) var leaked = false

    init(installing replacement: any ChannelHandler) {
        self.replacement = replacement
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is TLSHandshakeCompleted else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        do {
            try context.pipeline.syncOperations.addHandler(self.replacement, position: .after(self))
            context.fireUserInboundEventTriggered(event)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        } catch {
            context.fireErrorCaught(error)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.leaked = true
        context.fireChannelRead(data)
    }
}

/// Holds back outbound writes while `stalling`, as a socket whose peer stopped reading does.
final class StallingWriter: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = ByteBuffer

    var stalling = false
    private var held: [(NIOAny, EventLoopPromise<Void>?)] = []
    private var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if self.stalling {
            self.held.append((data, promise))
        } else {
            context.write(data, promise: promise)
        }
    }

    /// Lets the held writes through, and stops holding.
    func release() {
        self.stalling = false
        guard let context = self.context else { return }
        let held = self.held
        self.held.removeAll()
        for (data, promise) in held {
            context.write(data, promise: promise)
        }
        context.flush()
    }
}

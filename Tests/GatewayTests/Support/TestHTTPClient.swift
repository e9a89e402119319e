import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// One HTTP/1.1 client connection for tests, on NIO, with nothing hidden from the test.
///
/// Deliberately not a general client: no redirects, no retries, no pooling, no decompression.
/// Requests go out on the one connection in sequence (keep-alive reuse is the point of many
/// tests), and the test can ask whether the server closed it. The connection only exists inside
/// `withConnection`, so it is always closed when the test is done with it.
///
/// Every wait is bounded by `timeout`: when it passes, the connection is closed and the call
/// throws, so a test fails instead of hanging.
final class TestHTTPClient {
    /// The underlying channel, for tests that need more than requests (its `isActive`, say).
    let channel: any Channel
    /// Value of the `Host` header sent when a request has none.
    let hostHeader: String
    /// Bound on each request (from the first byte written to the last one read).
    let timeout: Duration

    private let outbound: NIOAsyncChannelOutboundWriter<HTTPClientRequestPart>
    private var inbound: NIOAsyncChannelInboundStream<HTTPClientResponsePart>.AsyncIterator

    private init(
        channel: any Channel,
        inbound: NIOAsyncChannelInboundStream<HTTPClientResponsePart>,
        outbound: NIOAsyncChannelOutboundWriter<HTTPClientRequestPart>,
        hostHeader: String,
        timeout: Duration
    ) {
        self.channel = channel
        self.inbound = inbound.makeAsyncIterator()
        self.outbound = outbound
        self.hostHeader = hostHeader
        self.timeout = timeout
    }

    /// Connects to `host:port`, runs `body` with the connection, then closes it.
    static func withConnection<Result: Sendable>(
        port: Int,
        host: String = "127.0.0.1",
        timeout: Duration = .seconds(30),
        _ body: (TestHTTPClient) async throws -> Result
    ) async throws -> Result {
        let connection = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(5))
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    // `addHTTPClientHandlers` without its header validator (tests may send odd
                    // headers on purpose) and with 1xx responses forwarded, so tests can see them.
                    let pipeline = channel.pipeline.syncOperations
                    try pipeline.addHandler(HTTPRequestEncoder())
                    try pipeline.addHandler(
                        ByteToMessageHandler(
                            HTTPResponseDecoder(leftOverBytesStrategy: .dropBytes, informationalResponseStrategy: .forward)
                        )
                    )
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(
                        wrappingChannelSynchronously: channel
                    )
                }
            }
        return try await connection.executeThenClose { inbound, outbound in
            let client = TestHTTPClient(
                channel: connection.channel,
                inbound: inbound,
                outbound: outbound,
                hostHeader: "\(host):\(port)",
                timeout: timeout
            )
            return try await body(client)
        }
    }

    /// One GET on a fresh connection.
    static func get(
        port: Int,
        path: String,
        host: String = "127.0.0.1",
        headers: [(String, String)] = [],
        timeout: Duration = .seconds(30)
    ) async throws -> TestHTTPResponse {
        try await withConnection(port: port, host: host, timeout: timeout) { client in
            try await client.request(.GET, path, headers: headers)
        }
    }

    // MARK: Requests

    /// Sends a request with an optional body (with `Content-Length`, unless `headers` sets
    /// framing itself) and reads the whole response.
    ///
    /// - Parameter keepBody: `false` counts the response body (`bodyCount`) without keeping
    ///   it, for responses too big to hold.
    func request(
        _ method: HTTPMethod = .GET,
        _ path: String,
        headers: [(String, String)] = [],
        body: [UInt8]? = nil,
        keepBody: Bool = true
    ) async throws -> TestHTTPResponse {
        var head = self.makeHead(method, path, headers)
        if let body, !Self.hasFraming(head.headers) {
            head.headers.add(name: "content-length", value: String(body.count))
        }
        let outbound = self.outbound
        let finalHead = head
        return try await self.exchange(head: head, keepBody: keepBody) {
            try await outbound.write(.head(finalHead))
            if let body, !body.isEmpty {
                try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: body))))
            }
            try await outbound.write(.end(nil))
        }
    }

    /// Sends a request whose body is `chunks`, each written as it is produced, with
    /// `Transfer-Encoding: chunked` (unless `headers` sets framing itself), and reads the
    /// whole response.
    ///
    /// The response is read while the body is still being sent, so a server that streams its
    /// answer (an echo) cannot deadlock against a client that is still writing.
    func request<Chunks: AsyncSequence & Sendable>(
        _ method: HTTPMethod = .POST,
        _ path: String,
        headers: [(String, String)] = [],
        chunks: Chunks,
        keepBody: Bool = true
    ) async throws -> TestHTTPResponse where Chunks.Element == [UInt8] {
        var head = self.makeHead(method, path, headers)
        if !Self.hasFraming(head.headers) {
            head.headers.add(name: "transfer-encoding", value: "chunked")
        }
        let outbound = self.outbound
        let finalHead = head
        return try await self.exchange(head: head, keepBody: keepBody) {
            try await outbound.write(.head(finalHead))
            for try await chunk in chunks where !chunk.isEmpty {
                try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: chunk))))
            }
            try await outbound.write(.end(nil))
        }
    }

    // MARK: Connection state

    /// Whether the connection is still open as far as this side knows.
    var isOpen: Bool { self.channel.isActive }

    /// Waits up to `timeout` for the server to close the connection; `true` if it did.
    ///
    /// Reliable once the previous response has been read: nothing is then buffered on this side,
    /// so the server's FIN is read as soon as it arrives.
    func waitForServerClose(timeout: Duration = .seconds(5)) async -> Bool {
        let channel = self.channel
        let promise = channel.eventLoop.makePromise(of: Bool.self)
        // Both callbacks run on the channel's event loop; the box lets only the first one answer.
        channel.eventLoop.execute {
            let answered = NIOLoopBoundBox(false, eventLoop: channel.eventLoop)
            let timer = channel.eventLoop.scheduleTask(in: TimeAmount(timeout)) {
                if !answered.value {
                    answered.value = true
                    promise.succeed(false)
                }
            }
            channel.closeFuture.whenComplete { _ in
                timer.cancel()
                if !answered.value {
                    answered.value = true
                    promise.succeed(true)
                }
            }
        }
        return (try? await promise.futureResult.get()) ?? false
    }

    // MARK: Raw bytes

    /// Writes `bytes` on a new connection and returns everything the server sends until it
    /// closes the connection or `timeout` passes, decoded as UTF-8 (for malformed-request tests).
    static func raw(
        port: Int,
        bytes: [UInt8],
        host: String = "127.0.0.1",
        timeout: Duration = .seconds(5),
        until done: @Sendable ([UInt8]) -> Bool = { _ in false }
    ) async throws -> String {
        String(
            decoding: try await rawBytes(port: port, bytes: bytes, host: host, timeout: timeout, until: done),
            as: UTF8.self)
    }

    /// `raw(port:bytes:)` that returns once `count` complete responses arrived (or the server
    /// closed, or `timeout` passed): for requests on a connection the server keeps open.
    static func raw(port: Int, _ text: String, responses count: Int, timeout: Duration = .seconds(5))
        async throws -> String
    {
        try await raw(port: port, bytes: Array(text.utf8), timeout: timeout) { received in
            RawResponses.count(in: received) >= count
        }
    }

    /// `raw(port:bytes:)` for a string.
    static func raw(port: Int, _ text: String, host: String = "127.0.0.1", timeout: Duration = .seconds(5))
        async throws -> String
    {
        try await raw(port: port, bytes: Array(text.utf8), host: host, timeout: timeout)
    }

    /// Like `raw(port:bytes:)`, returning the bytes undecoded (for binary protocols after an upgrade).
    static func rawBytes(
        port: Int,
        bytes: [UInt8],
        host: String = "127.0.0.1",
        timeout: Duration = .seconds(5),
        until done: @Sendable ([UInt8]) -> Bool = { _ in false }
    ) async throws -> [UInt8] {
        let connection = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(5))
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        let channel = connection.channel
        // The deadline closes the connection, which ends the read loop below.
        let timer = channel.eventLoop.scheduleTask(in: TimeAmount(timeout)) { channel.close(promise: nil) }
        defer { timer.cancel() }
        return try await connection.executeThenClose { inbound, outbound in
            var received: [UInt8] = []
            do {
                try await outbound.write(ByteBuffer(bytes: bytes))
                for try await buffer in inbound {
                    received.append(contentsOf: buffer.readableBytesView)
                    if done(received) { break }
                }
            } catch {
                // A reset or the deadline: what arrived before it is the answer.
            }
            return received
        }
    }

    // MARK: Internals

    private func makeHead(_ method: HTTPMethod, _ path: String, _ headers: [(String, String)]) -> HTTPRequestHead {
        var fields = HTTPHeaders(headers)
        if !fields.contains(name: "host") {
            fields.add(name: "host", value: self.hostHeader)
        }
        return HTTPRequestHead(version: .http1_1, method: method, uri: path, headers: fields)
    }

    private static func hasFraming(_ headers: HTTPHeaders) -> Bool {
        headers.contains(name: "content-length") || headers.contains(name: "transfer-encoding")
    }

    /// Writes the request (in a child task, through `send`) while reading the response here.
    private func exchange(
        head: HTTPRequestHead,
        keepBody: Bool,
        send: @escaping @Sendable () async throws -> Void
    ) async throws -> TestHTTPResponse {
        let channel = self.channel
        let timedOut = Flag()
        let timer = channel.eventLoop.scheduleTask(in: TimeAmount(self.timeout)) {
            timedOut.set()
            channel.close(promise: nil)
        }
        defer { timer.cancel() }

        let writer = Task<(any Error)?, Never> {
            do {
                try await send()
                return nil
            } catch {
                return error
            }
        }
        let response: TestHTTPResponse
        do {
            response = try await self.readResponse(to: head, keepBody: keepBody)
        } catch {
            let writeError = await writer.value
            if timedOut.isSet {
                throw TestSupportError("\(head.method) \(head.uri): no complete response within \(self.timeout)")
            }
            if let writeError {
                throw TestSupportError("\(head.method) \(head.uri): \(error) (while writing: \(writeError))")
            }
            throw error
        }
        // A server may answer before reading the whole body (413, say); that answer is what the
        // test wants, so a failed write after it is not an error.
        _ = await writer.value
        return response
    }

    /// A one-way flag set from the event loop and read from the test's task.
    private final class Flag: Sendable {
        private let value = Mutex(false)
        var isSet: Bool { self.value.withLock { $0 } }
        func set() { self.value.withLock { $0 = true } }
    }

    private func readResponse(to request: HTTPRequestHead, keepBody: Bool) async throws -> TestHTTPResponse {
        var informational: [HTTPResponseHead] = []
        var head: HTTPResponseHead?
        var body: [UInt8] = []
        var bodyCount = 0
        while true {
            guard let part = try await self.inbound.next() else {
                throw TestSupportError(
                    "\(request.method) \(request.uri): connection closed "
                        + (head.map { "after \(bodyCount) body bytes of a \($0.status.code) response" }
                            ?? "before a response head")
                )
            }
            switch part {
            case .head(let received) where received.status.code < 200 && received.status != .switchingProtocols:
                informational.append(received)
            case .head(let received):
                head = received
                if received.status == .switchingProtocols {
                    return TestHTTPResponse(
                        version: received.version,
                        status: received.status,
                        headers: received.headers,
                        body: [],
                        bodyCount: 0,
                        informational: informational
                    )
                }
            case .body(let buffer):
                bodyCount += buffer.readableBytes
                if keepBody { body.append(contentsOf: buffer.readableBytesView) }
            case .end:
                guard let head else { throw TestSupportError("\(request.uri): response end without a head") }
                return TestHTTPResponse(
                    version: head.version,
                    status: head.status,
                    headers: head.headers,
                    body: body,
                    bodyCount: bodyCount,
                    informational: informational
                )
            }
        }
    }
}

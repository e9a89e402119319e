import NIOCore
import NIOHTTP1
import Synchronization

/// Answers the demo backend's HTTP/1.1 requests on one connection.
///
/// Sits behind `HTTPServerPipelineHandler`, so it sees one request at a time and the pipeline
/// handler takes care of pipelining and of closing the connection when the server quiesces.
/// Bodies are streamed both ways: `/echo` writes each request chunk back as it arrives and stops
/// reading while the client is not taking the echo (so an upload of any size is held in memory
/// a chunk at a time), and `/bytes` writes only while the channel is writable.
final class DemoRequestHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// What the response needs to know about the request it answers.
    private struct Request {
        var head: HTTPRequestHead
        var route: DemoRoute
        /// Set when the client asked for it, or when the response can only end with the
        /// connection (an echo of an unframed HTTP/1.0 body).
        var closesConnection: Bool
        var isHead: Bool { self.head.method == .HEAD }

        init(head: HTTPRequestHead) {
            self.head = head
            self.route = DemoRoute(uri: head.uri)
            // An upgrade that reaches this handler was not taken (only /ws is): NIO's decoder
            // parses nothing after an upgrade request, so the connection ends with this answer
            // instead of waiting for a next request it would never read (curl --http2 asks for h2c).
            self.closesConnection = !head.isKeepAlive || head.headers.contains(name: "upgrade")
        }
    }

    private enum State {
        /// Between requests.
        case idle
        /// Head received; the answer is written once the request's end arrives. Any body is discarded.
        case awaitingEnd(Request)
        /// Response head written; request body parts are written back as they arrive.
        case echoing(Request)
        /// Request complete; `/sleep` is waiting for its timer.
        case sleeping(Request, Scheduled<Void>)
        /// Request complete; `/bytes` is writing, `remaining` still to go.
        case sendingBytes(Request, remaining: Int64)
        /// The channel has gone; nothing more is written.
        case closed
    }

    private static let chunkSize = 64 * 1024

    /// Requests of this process between their head and their response's end (or their
    /// connection's loss). Printed at shutdown, so a test can check from the backend's side
    /// that the gateway had drained it before it was signalled.
    static let inFlight = Atomic<Int>(0)

    private let name: String
    private let pid: Int32
    private let logRequests: Bool
    private var state = State.idle
    /// A `read` held back because the client is not draining the echo.
    private var readPending = false
    private var needsFlush = false
    private var chunk: ByteBuffer?
    /// Set when a `ChannelShouldQuiesceEvent` reaches this handler. That only happens during a
    /// WebSocket upgrade (NIO's pipeline handler replays a swallowed quiesce as it is removed),
    /// and the upgrade hands it on to the WebSocket handler so a drain is not lost in between.
    private(set) var quiesceRequested = false

    /// - Parameter logRequests: print a line as each request head arrives, so a test (or a
    ///   person) can see that a request has reached the backend before acting on it.
    init(name: String, pid: Int32, logRequests: Bool) {
        self.name = name
        self.pid = pid
        self.logRequests = logRequests
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.requestHead(context: context, head: head)
        case .body(let buffer):
            if case .echoing = self.state, !buffer.readableBytesView.isEmpty {
                context.write(self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
                self.needsFlush = true
            }
        case .end(let trailers):
            self.requestEnd(context: context, trailers: trailers)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if self.needsFlush {
            self.needsFlush = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .sleeping(_, let timer) = self.state {
            timer.cancel()
        }
        self.leaveRequest()
        self.state = .closed
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            if self.readPending {
                self.readPending = false
                context.read()
            }
            if case .sendingBytes = self.state {
                self.writeBytes(context: context)
            }
        }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            self.quiesceRequested = true
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Parse errors were answered with 400 by the error handler in front; anything else
        // (a reset, say) leaves nothing useful to do with this connection.
        context.close(promise: nil)
    }

    // MARK: Outbound

    func read(context: ChannelHandlerContext) {
        if case .echoing = self.state, !context.channel.isWritable {
            self.readPending = true
        } else {
            context.read()
        }
    }

    // MARK: Requests

    private func requestHead(context: ChannelHandlerContext, head: HTTPRequestHead) {
        guard case .idle = self.state else { return }
        Self.inFlight.wrappingAdd(1, ordering: .relaxed)
        if self.logRequests {
            DemoBackend.say("demo-backend \(self.name) request \(head.method.rawValue) \(head.uri)")
        }
        var request = Request(head: head)
        guard request.route == .echo, !request.isHead else {
            self.state = .awaitingEnd(request)
            return
        }
        if head.headers[canonicalForm: "expect"].contains(where: { $0.lowercased() == "100-continue" }) {
            let interim = HTTPResponseHead(version: head.version, status: .continue)
            context.write(self.wrapOutboundOut(.head(interim)), promise: nil)
        }
        var headers = HTTPHeaders()
        if let type = head.headers.first(name: "content-type") {
            headers.add(name: "content-type", value: type)
        }
        if let length = head.headers.first(name: "content-length") {
            headers.add(name: "content-length", value: length)
        } else if !head.headers.contains(name: "transfer-encoding") {
            headers.add(name: "content-length", value: "0")
        }
        // Otherwise no length: the encoder frames it chunked (HTTP/1.1), or it ends with the
        // connection (HTTP/1.0).
        if head.version.minor == 0 && !headers.contains(name: "content-length") {
            request.closesConnection = true
        }
        context.writeAndFlush(self.wrapOutboundOut(.head(self.responseHead(request, .ok, headers))), promise: nil)
        self.state = .echoing(request)
    }

    private func requestEnd(context: ChannelHandlerContext, trailers: HTTPHeaders?) {
        switch self.state {
        case .echoing(let request):
            // A chunked echo returns the request's trailers as its own (a content-length one
            // has no way to carry them).
            self.endResponse(context: context, request: request, trailers: request.head.headers.contains(name: "content-length") ? nil : trailers)
        case .awaitingEnd(let request):
            self.answer(context: context, request: request)
        case .idle, .sleeping, .sendingBytes, .closed:
            break
        }
    }

    private func answer(context: ChannelHandlerContext, request: Request) {
        switch request.route {
        case .hello:
            self.respond(context: context, request: request, body: "\(self.name) pid \(self.pid)\n")
        case .headers:
            self.respond(
                context: context,
                request: request,
                contentType: "application/json",
                body: DemoHeadersJSON.encode(request.head)
            )
        case .health:
            self.respond(context: context, request: request, body: "ok\n")
        case .echo:
            // Only HEAD gets here: no body to send back.
            self.respond(context: context, request: request, body: "")
        case .status(let code):
            let status = HTTPResponseStatus(statusCode: code)
            self.respond(context: context, request: request, status: status, body: "status \(code)\n")
        case .webSocketWithoutUpgrade:
            self.respond(
                context: context,
                request: request,
                status: .upgradeRequired,
                body: "use a WebSocket upgrade\n"
            )
        case .badRequest(let reason):
            self.respond(context: context, request: request, status: .badRequest, body: reason + "\n")
        case .notFound:
            self.respond(context: context, request: request, status: .notFound, body: "not found\n")
        case .sleep(let milliseconds):
            let timer = context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(milliseconds)) {
                guard case .sleeping(let request, _) = self.state else { return }
                self.respond(context: context, request: request, body: "slept \(milliseconds) ms\n")
            }
            self.state = .sleeping(request, timer)
        case .bytes(let count):
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: "application/octet-stream")
            headers.add(name: "content-length", value: String(count))
            context.write(self.wrapOutboundOut(.head(self.responseHead(request, .ok, headers))), promise: nil)
            if request.isHead {
                self.endResponse(context: context, request: request)
            } else {
                self.state = .sendingBytes(request, remaining: count)
                self.writeBytes(context: context)
            }
        }
    }

    /// Writes `/bytes` chunks while the channel is writable; resumed by `channelWritabilityChanged`.
    private func writeBytes(context: ChannelHandlerContext) {
        guard case .sendingBytes(let request, var remaining) = self.state else { return }
        if self.chunk == nil {
            self.chunk = context.channel.allocator.buffer(repeating: UInt8(ascii: "x"), count: Self.chunkSize)
        }
        let chunk = self.chunk!
        while remaining > 0 && context.channel.isWritable {
            let size = Int(min(remaining, Int64(Self.chunkSize)))
            let slice = size == Self.chunkSize ? chunk : chunk.getSlice(at: chunk.readerIndex, length: size)!
            context.write(self.wrapOutboundOut(.body(.byteBuffer(slice))), promise: nil)
            remaining -= Int64(size)
        }
        if remaining == 0 {
            self.endResponse(context: context, request: request)
        } else {
            self.state = .sendingBytes(request, remaining: remaining)
            context.flush()
        }
    }

    /// Writes a whole response with a fixed body.
    private func respond(
        context: ChannelHandlerContext,
        request: Request,
        status: HTTPResponseStatus = .ok,
        contentType: String = "text/plain; charset=utf-8",
        body: String
    ) {
        var headers = HTTPHeaders()
        let hasBody = status.mayHaveResponseBody
        if hasBody {
            headers.add(name: "content-type", value: contentType)
            headers.add(name: "content-length", value: String(body.utf8.count))
        }
        context.write(self.wrapOutboundOut(.head(self.responseHead(request, status, headers))), promise: nil)
        if hasBody && !request.isHead && !body.isEmpty {
            let buffer = context.channel.allocator.buffer(string: body)
            context.write(self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        self.endResponse(context: context, request: request)
    }

    private func responseHead(_ request: Request, _ status: HTTPResponseStatus, _ headers: HTTPHeaders)
        -> HTTPResponseHead
    {
        var headers = headers
        if request.closesConnection {
            headers.replaceOrAdd(name: "connection", value: "close")
        } else if request.head.version.minor == 0 {
            headers.replaceOrAdd(name: "connection", value: "keep-alive")
        }
        return HTTPResponseHead(version: request.head.version, status: status, headers: headers)
    }

    /// The request being served (if any) is no longer in flight.
    private func leaveRequest() {
        switch self.state {
        case .idle, .closed: break
        default: Self.inFlight.wrappingSubtract(1, ordering: .relaxed)
        }
    }

    private func endResponse(context: ChannelHandlerContext, request: Request, trailers: HTTPHeaders? = nil) {
        self.leaveRequest()
        self.state = .idle
        self.needsFlush = false
        let written = context.writeAndFlush(self.wrapOutboundOut(.end(trailers)))
        if request.closesConnection {
            written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }
}

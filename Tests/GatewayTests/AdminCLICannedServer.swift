import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A stand-in for the gateway's admin API that answers every request with one canned status
/// and body, and records what it was asked.
///
/// It tests the CLI's client side only (request line, query encoding, how answers map to output
/// and exit codes); the server side of these endpoints is tested against the real gateway.
final class AdminCLICannedServer: Sendable {
    struct Request: Sendable, Equatable {
        var method: String
        /// The request target as sent, query and percent-encoding included.
        var uri: String
        var path: String
        /// Decoded query parameters.
        var query: [String: String]
        var headers: [String: String]
    }

    let port: Int
    private let channel: any Channel
    private let recorded: Recorder

    var url: String { "http://127.0.0.1:\(self.port)" }
    var requests: [Request] { self.recorded.requests }

    /// Starts on 127.0.0.1, port 0. `reply` is sent as the body of every answer; with `raw`
    /// set, the server answers with those bytes instead of HTTP and closes (for the "not HTTP" case).
    /// With `silent` set, requests are recorded and never answered (for the request timeout).
    init(status: Int, reply: String, raw: String? = nil, silent: Bool = false) async throws {
        let recorder = Recorder()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let raw {
                        try channel.pipeline.syncOperations.addHandler(RawReplyHandler(bytes: Array(raw.utf8)))
                    } else {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                        try channel.pipeline.syncOperations.addHandler(
                            CannedReplyHandler(status: status, body: Array(reply.utf8), silent: silent, recorder: recorder)
                        )
                    }
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        guard let port = channel.localAddress?.port else {
            throw TestSupportError("the canned admin server has no local port")
        }
        self.port = port
        self.channel = channel
        self.recorded = recorder
    }

    func close() async {
        try? await self.channel.close()
    }

    final class Recorder: Sendable {
        private let list = Mutex<[Request]>([])
        var requests: [Request] { self.list.withLock { $0 } }
        func append(_ request: Request) { self.list.withLock { $0.append(request) } }
    }
}

/// Answers each request with the canned status and body, `Connection: close`, then closes.
private final class CannedReplyHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let status: Int
    let body: [UInt8]
    let silent: Bool
    let recorder: AdminCLICannedServer.Recorder
    private var head: HTTPRequestHead?

    init(status: Int, body: [UInt8], silent: Bool, recorder: AdminCLICannedServer.Recorder) {
        self.status = status
        self.body = body
        self.silent = silent
        self.recorder = recorder
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .body:
            break
        case .end:
            guard let head = self.head else { return }
            self.recorder.append(Self.record(head))
            guard !self.silent else { return }
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: "application/json")
            headers.add(name: "content-length", value: String(self.body.count))
            headers.add(name: "connection", value: "close")
            let responseHead = HTTPResponseHead(
                version: .http1_1,
                status: HTTPResponseStatus(statusCode: self.status),
                headers: headers
            )
            context.write(self.wrapOutboundOut(.head(responseHead)), promise: nil)
            context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: self.body)))), promise: nil)
            let channel = context.channel
            context.writeAndFlush(self.wrapOutboundOut(.end(nil))).whenComplete { _ in
                channel.close(promise: nil)
            }
        }
    }

    private static func record(_ head: HTTPRequestHead) -> AdminCLICannedServer.Request {
        let parts = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        var query: [String: String] = [:]
        if parts.count > 1 {
            for pair in parts[1].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let value = kv.count > 1 ? String(kv[1]) : ""
                query[String(kv[0])] = value.removingPercentEncoding ?? value
            }
        }
        var headers: [String: String] = [:]
        for (name, value) in head.headers { headers[name.lowercased()] = value }
        return AdminCLICannedServer.Request(
            method: head.method.rawValue,
            uri: head.uri,
            path: String(parts[0]),
            query: query,
            headers: headers
        )
    }
}

/// Answers whatever arrives with bytes that are not HTTP, then closes. (It waits for the
/// request, so the client's write never races the close.)
private final class RawReplyHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let bytes: [UInt8]

    init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    private var answered = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.answered else { return }
        self.answered = true
        let channel = context.channel
        context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(bytes: self.bytes))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }
}

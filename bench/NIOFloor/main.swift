// nio-floor: the least a SwiftNIO proxy can do per request, as a yardstick for the gateway.
//
// Each client connection gets its own connection to the origin, and the bytes are copied both
// ways as they come: no HTTP parsing, no routing, no limits, no pool, no timers, no logging. It
// runs on one event-loop thread with the same NIO and the same release settings as the gateway.
// With keep-alive clients and a keep-alive origin it proxies HTTP/1.1 correctly (one request at
// a time per connection), so wrk can drive it like any proxy, and its CPU per request is the floor
// that NIO's channel machinery (two channels per exchange, a read and a write on each) puts under
// any proxy written on it. bench/proxy-vs-peers.sh runs it as the target `floor` beside the
// gateway, nginx and HAProxy.
//
//   nio-floor LISTEN-PORT ORIGIN-PORT   (both on 127.0.0.1)
//
// A benchmark tool, not a product: no backpressure (wrk waits for every response before it sends
// the next request, so at most one response is in flight per connection) and no error reporting
// beyond closing both sides.
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// One side of a glued pair: what it reads is written to its peer, flushed at the end of the
/// read batch, as the gateway flushes.
final class Glue: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    var peer: Channel?
    /// Client bytes that arrived before the origin connection was up.
    var early: [ByteBuffer] = []
    var wrote = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        if let peer {
            peer.write(bytes, promise: nil)
            wrote = true
        } else {
            early.append(bytes)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if wrote, let peer {
            wrote = false
            peer.flush()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        peer?.close(promise: nil)
        peer = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

let arguments = CommandLine.arguments
guard arguments.count == 3, let listenPort = Int(arguments[1]), let originPort = Int(arguments[2]) else {
    print("usage: nio-floor LISTEN-PORT ORIGIN-PORT")
    exit(2)
}

let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
let origin = try SocketAddress(ipAddress: "127.0.0.1", port: originPort)

let server = try ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 4096)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
    .childChannelInitializer { client in
        let clientSide = Glue()
        do {
            try client.pipeline.syncOperations.addHandler(clientSide)
        } catch {
            return client.eventLoop.makeFailedFuture(error)
        }
        let bound = NIOLoopBound(clientSide, eventLoop: client.eventLoop)
        ClientBootstrap(group: client.eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { upstream in
                let originSide = Glue()
                originSide.peer = client
                return upstream.eventLoop.makeCompletedFuture {
                    try upstream.pipeline.syncOperations.addHandler(originSide)
                }
            }
            .connect(to: origin)
            .whenComplete { result in
                switch result {
                case .success(let upstream):
                    let clientSide = bound.value
                    clientSide.peer = upstream
                    if !clientSide.early.isEmpty {
                        for bytes in clientSide.early { upstream.write(bytes, promise: nil) }
                        clientSide.early = []
                        upstream.flush()
                    }
                    if !client.isActive { upstream.close(promise: nil) }
                case .failure:
                    client.close(promise: nil)
                }
            }
        return client.eventLoop.makeSucceededVoidFuture()
    }
    .bind(host: "127.0.0.1", port: listenPort)
    .wait()

print("nio-floor listening on 127.0.0.1:\(listenPort), origin 127.0.0.1:\(originPort)")
try server.closeFuture.wait()

import NIOCore
import NIOPosix
import Supervisor

/// The supervisor's health checks, done with the gateway's event loops: a TCP connect, or an
/// HTTP/1.1 GET whose status line must say 2xx or 3xx. Only the status line is read; the
/// connection is closed right after it.
struct HealthProber: Sendable {
    let group: EventLoopGroup

    func probe(_ instance: InstanceEndpoint, check: HealthCheckSpec) async -> HealthProbeResult {
        let timeout = TimeAmount(check.timeout)
        let loop = group.next()
        let deadline = NIODeadline.now() + timeout
        let channel: Channel
        do {
            channel = try await ClientBootstrap(group: loop)
                .connectTimeout(timeout)
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .connect(host: instance.host, port: instance.port).get()
        } catch {
            return .failed("cannot connect to \(instance.address): \(error)")
        }
        guard case .http(let path) = check.kind else {
            channel.close(promise: nil)
            return .passed
        }
        let promise = loop.makePromise(of: HealthProbeResult.self)
        let request = "GET \(path) HTTP/1.1\r\nHost: \(instance.address)\r\nUser-Agent: gateway-health\r\nConnection: close\r\n\r\n"
        do {
            try await channel.eventLoop.submit {
                try channel.pipeline.syncOperations.addHandler(StatusLineReader(promise: promise, address: instance.address))
            }.get()
            let remaining = deadline - .now()
            let timer = loop.scheduleTask(in: remaining) {
                promise.succeed(.failed("no answer from \(instance.address)\(path) within \(check.timeout)"))
            }
            channel.writeAndFlush(ByteBuffer(string: request), promise: nil)
            let result = try await promise.futureResult.get()
            timer.cancel()
            channel.close(promise: nil)
            return result
        } catch {
            // The channel closed before the reader was added: the promise must still complete
            // (an abandoned NIO promise is a crash in debug builds).
            promise.succeed(.failed("\(instance.address)\(path): \(error)"))
            channel.close(promise: nil)
            return .failed("\(instance.address)\(path): \(error)")
        }
    }
}

/// Collects bytes until the first CRLF and judges the status code in it.
private final class StatusLineReader: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let promise: EventLoopPromise<HealthProbeResult>
    private let address: String
    private var buffer = ByteBuffer()

    init(promise: EventLoopPromise<HealthProbeResult>, address: String) {
        self.promise = promise
        self.address = address
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var chunk = unwrapInboundIn(data)
        buffer.writeBuffer(&chunk)
        guard let line = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else {
            if buffer.readableBytes > 4096 { promise.succeed(.failed("no HTTP status line from \(address)")) }
            return
        }
        let text = String(decoding: buffer.readableBytesView[..<line], as: UTF8.self)
        let parts = text.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), let code = Int(parts[1]) else {
            promise.succeed(.failed("not an HTTP answer from \(address): \(text.prefix(80))"))
            return
        }
        promise.succeed((200..<400).contains(code) ? .passed : .failed("status \(code)"))
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.succeed(.failed("\(address) closed the connection without an answer"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        promise.succeed(.failed("\(address): \(error)"))
        context.close(promise: nil)
    }
}

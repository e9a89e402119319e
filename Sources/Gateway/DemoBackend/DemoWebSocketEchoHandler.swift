import NIOCore
import NIOWebSocket

/// Echoes WebSocket frames on an upgraded `/ws` connection, so tests can check that a proxy
/// tunnels upgrades both ways.
///
/// Frames go back one for one (same opcode and `fin`), so fragmented messages come back
/// fragmented the same way. When the server drains it says goodbye with close code 1001
/// (Going Away), as the product's design asks of upgraded tunnels.
final class DemoWebSocketEchoHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private var closeSent = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = self.unwrapInboundIn(data)
        switch frame.opcode {
        case .text, .binary, .continuation:
            guard !self.closeSent else { return }
            let echo = WebSocketFrame(fin: frame.fin, opcode: frame.opcode, data: frame.unmaskedData)
            context.writeAndFlush(self.wrapOutboundOut(echo), promise: nil)
        case .ping:
            guard !self.closeSent else { return }
            let pong = WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)
            context.writeAndFlush(self.wrapOutboundOut(pong), promise: nil)
        case .connectionClose:
            if self.closeSent {
                // The client answered our close: the closing handshake is complete.
                context.close(promise: nil)
            } else {
                // Answer with the client's own status code, then close.
                self.closeSent = true
                var payload = frame.unmaskedData
                let code = payload.readSlice(length: 2) ?? context.channel.allocator.buffer(capacity: 0)
                let reply = WebSocketFrame(fin: true, opcode: .connectionClose, data: code)
                context.writeAndFlush(self.wrapOutboundOut(reply)).assumeIsolated().whenComplete { _ in
                    context.close(promise: nil)
                }
            }
        default:
            break
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            guard !self.closeSent else { return }
            self.closeSent = true
            var payload = context.channel.allocator.buffer(capacity: 2)
            payload.write(webSocketErrorCode: .goingAway)
            let goodbye = WebSocketFrame(fin: true, opcode: .connectionClose, data: payload)
            context.writeAndFlush(self.wrapOutboundOut(goodbye), promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

import Logging
import RequestControl

/// The proxy's part in a suspend: when a scope starts to drain, idle keep-alive client
/// connections that would send their next request into it are closed, and idle pooled
/// connections to a backend that leaves the rotation are dropped.
final class ProxyActivity: SuspendableActivity {
    private let server: ProxyServer

    init(server: ProxyServer) {
        self.server = server
    }

    func preSuspend(_ scope: SuspendScope) async {
        switch scope {
        case .gateway:
            await server.forEachLoop { $0.closeIdleConnections(deployment: nil) }
        case .deployment(let name):
            await server.forEachLoop { $0.closeIdleConnections(deployment: name) }
        case .entryPoint:
            // Responses in the scope carry Connection: close; other entry points keep the connection.
            break
        case .backend(_, let address):
            // Backends come and go (supervised instances), so the address is read from the scope.
            guard case .success(let backend) = HostPort.parse(address, allowAnyPort: false) else { return }
            await server.forEachLoop { $0.pool.closeIdle(backend: backend) }
        }
    }

    func suspended(_ scope: SuspendScope) async {
        // The drain finished or timed out: upgraded tunnels in the scope end now, and connections
        // that went idle during the drain are closed too.
        switch scope {
        case .gateway:
            await server.forEachLoop {
                $0.closeTunnels(deployment: nil)
                $0.closeIdleConnections(deployment: nil)
            }
        case .deployment(let name):
            await server.forEachLoop { $0.closeTunnels(deployment: name) }
        case .entryPoint, .backend:
            break
        }
    }

    func resume(_ scope: SuspendScope) async {}
}

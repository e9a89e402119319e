import Logging
import ProxyRules
import NIOCore
import RequestControl

/// A client connection as a drain sees it: HTTP/1.1 (`ProxyHandler`) or HTTP/2 (`H2ConnectionHandler`).
protocol ClientConnection: AnyObject {
    /// The scope (`nil`: the gateway) started draining: an idle HTTP/1.1 connection closes, an
    /// HTTP/2 connection sends its GOAWAYs and closes when its streams are done.
    func closeIfIdle(deployment: String?)
    func closeTunnel(deployment: String?)
    /// Closes the connection's tunnel if it goes to `backend` (a planned stop of that instance);
    /// true if it did.
    func closeTunnel(backend: HostPort) -> Bool
    /// Closes at once; what is still in flight is cut.
    func closeNow()
    /// A new worker took over the listening sockets (the loop's `handingOver` is set): a
    /// connection that has served a request and waits for the next closes (its client may send
    /// that one again, RFC 9112 9.3.1); one that has carried no request yet is served first, since
    /// its client has nowhere else to send it. HTTP/2 sends its GOAWAYs after the first streams.
    func handOver()
}

/// Everything a client connection needs that belongs to its event loop: the routes, the upstream
/// pool and the connections themselves (so a drain can close the idle ones).
///
/// Touched only on its loop; the gateway reaches it through `NIOLoopBound` or by submitting work.
final class LoopContext {
    let eventLoop: EventLoop
    var router: Router
    /// Which publication `router` came from (see `BackendMembership`).
    var routerVersion = 0
    var timeouts: TimeoutsConfig
    var limits: LimitsConfig
    var http2: HTTP2Config
    /// `Upgrade` protocols tunnelled to the backend (lower-case; `upgrade_protocols`); any
    /// other is not passed on.
    var upgradeProtocols = ["websocket"]
    let pool: UpstreamPool
    /// An empty buffer to write where only a write's promise is wanted (shared storage: no
    /// allocation per write).
    let emptyBuffer = ByteBufferAllocator().buffer(capacity: 0)
    /// The deadlines of this loop's client connections (one wheel, not a timer per connection).
    let timers: LoopTimers
    /// Passive health of fixed backends (shared by every loop); nil in handler tests.
    let ejection: PassiveEjection?
    let logger: Logger
    /// This loop's own share of the traffic counters.
    let traffic: TrafficCounters.Shard
    private var connections: [ObjectIdentifier: any ClientConnection] = [:]
    /// Scratch space for the fields of the head being scanned (HTTP/1.1 requests and every
    /// backend response): one array per loop, reused, so scanning a head allocates nothing.
    var headFields: [HTTP1Field] = {
        var fields: [HTTP1Field] = []
        fields.reserveCapacity(64)
        return fields
    }()
    /// Makes the ids of requests that came without a well-formed one (see `RequestID`).
    var requestIDs = RequestIDGenerator()
    /// This loop's share of the access log; nil in handler tests (no writer at all). Whether
    /// lines are written is the writer's setting (`access_log`), which a reload changes.
    let accessLog: AccessLogBuffer?
    /// A new worker serves on the same sockets and this one is on its way out: the connections
    /// it accepted are served to their end, every response closes its connection.
    private(set) var handingOver = false
    /// Where this loop's idle cleartext HTTP/1.1 connections wait outside NIO
    /// (`timeouts.park_idle`), shared by the worker's loops; nil: nothing is parked (tests).
    var parking: IdleParking?
    /// This loop's index among the worker's loops: where a parked connection comes back to.
    var parkingIndex = 0

    init(
        eventLoop: EventLoop, router: Router, timeouts: TimeoutsConfig, limits: LimitsConfig,
        http2: HTTP2Config = HTTP2Config(), traffic: TrafficCounters.Shard, ejection: PassiveEjection? = nil,
        accessLog: AccessLogWriter? = nil, logger: Logger, timerClock: (() -> NIODeadline)? = nil
    ) {
        self.accessLog = accessLog.map { AccessLogBuffer(writer: $0, eventLoop: eventLoop) }
        self.ejection = ejection
        self.http2 = http2
        self.traffic = traffic
        self.eventLoop = eventLoop
        self.router = router
        self.timeouts = timeouts
        self.limits = limits
        if let timerClock {
            // Tests on an EmbeddedEventLoop: the wheel runs on the loop's own clock.
            self.timers = LoopTimers(eventLoop: eventLoop, resolution: .milliseconds(100), slotCount: 1024, clock: timerClock)
        } else {
            self.timers = LoopTimers(eventLoop: eventLoop)
        }
        self.pool = UpstreamPool(eventLoop: eventLoop, connectTimeout: .init(timeouts.connect), timers: timers)
        self.logger = logger
    }

    func register(_ handler: any ClientConnection) {
        connections[ObjectIdentifier(handler)] = handler
    }

    func unregister(_ handler: any ClientConnection) {
        connections[ObjectIdentifier(handler)] = nil
    }

    /// Begins handing this loop's connections over to a new worker (see `handOver()` on
    /// ClientConnection): from now on every response closes its connection.
    func startHandover() {
        handingOver = true
        for handler in connections.values {
            handler.handOver()
        }
        parking?.closeServed(loop: parkingIndex)
    }

    /// Closes the keep-alive connections that wait for their next request, so their clients
    /// reconnect (to another gateway, or later). Busy connections close after their response.
    /// A drain of one deployment closes only the idle connections whose last request went there.
    func closeIdleConnections(deployment: String?) {
        for handler in connections.values {
            handler.closeIfIdle(deployment: deployment)
        }
        parking?.closeIdle(loop: parkingIndex, deployment: deployment)
    }

    /// Closes the upgraded tunnels (WebSocket...) whose drain timed out or finished.
    func closeTunnels(deployment: String?) {
        for handler in connections.values {
            handler.closeTunnel(deployment: deployment)
        }
    }

    /// Closes the tunnels forwarded to one backend (a planned stop of that instance): a
    /// WebSocket client gets 1001 Going Away and reconnects, to another instance. Returns how many.
    @discardableResult
    func closeTunnels(backend: HostPort) -> Int {
        var closed = 0
        for handler in connections.values {
            if handler.closeTunnel(backend: backend) { closed += 1 }
        }
        return closed
    }

    /// Closes every connection at once: the end of a shutdown.
    func closeAllConnections() {
        for handler in connections.values {
            handler.closeNow()
        }
        parking?.closeAll(loop: parkingIndex)
        pool.closeIdle()
    }
}

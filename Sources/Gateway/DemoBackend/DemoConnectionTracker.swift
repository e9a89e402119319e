import NIOCore
import Synchronization

/// The demo backend's open connections, so that a graceful shutdown can ask each one to finish
/// and know when they all have.
///
/// This is the job NIOExtras' `ServerQuiescingHelper` does; NIOExtras is not a dependency, and
/// the shutdown is driven by swift-service-lifecycle here, so it is a few lines of our own.
final class DemoConnectionTracker: Sendable {
    private struct State {
        var channels: [ObjectIdentifier: any Channel] = [:]
        var draining = false
        /// Completed (with `true`) when the last connection closes during a drain.
        var drained: EventLoopPromise<Bool>?
    }

    private let state = Mutex(State())

    /// Number of connections open now.
    var count: Int { self.state.withLock { $0.channels.count } }

    /// Records a newly accepted connection; `false` when the server is already draining, in
    /// which case the caller closes it (it slipped in while the listener was closing).
    func register(_ channel: any Channel) -> Bool {
        let id = ObjectIdentifier(channel)
        let accepted = self.state.withLock { state in
            guard !state.draining else { return false }
            state.channels[id] = channel
            return true
        }
        if accepted {
            channel.closeFuture.whenComplete { _ in self.remove(id) }
        }
        return accepted
    }

    /// Stops accepting registrations and asks every open connection to finish its current
    /// request and close (`ChannelShouldQuiesceEvent`, which NIOHTTP1's pipeline handler and the
    /// WebSocket echo handler understand).
    ///
    /// Returns how many connections were open.
    func quiesceAll() -> Int {
        let channels = self.state.withLock { state in
            state.draining = true
            return Array(state.channels.values)
        }
        for channel in channels {
            channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        }
        return channels.count
    }

    /// Waits until every connection has closed or `timeout` has passed; returns how many are
    /// still open (0 when the drain completed).
    func waitUntilDrained(timeout: Duration, on eventLoop: any EventLoop) async -> Int {
        let promise = eventLoop.makePromise(of: Bool.self)
        let alreadyEmpty = self.state.withLock { state in
            if state.channels.isEmpty { return true }
            state.drained = promise
            return false
        }
        if alreadyEmpty {
            // Every NIO promise must be completed, even one nobody waits for.
            promise.succeed(true)
            return 0
        }
        // Whoever takes the promise out of the state (the last close, or this timer) completes it.
        let timer = eventLoop.scheduleTask(in: TimeAmount(timeout)) {
            let waiting = self.state.withLock { state in
                defer { state.drained = nil }
                return state.drained
            }
            waiting?.succeed(false)
        }
        _ = try? await promise.futureResult.get()
        timer.cancel()
        return self.count
    }

    /// Closes whatever is still open, and waits for those closes.
    func closeAll() async {
        let channels = self.state.withLock { Array($0.channels.values) }
        for channel in channels {
            try? await channel.close()
        }
    }

    private func remove(_ id: ObjectIdentifier) {
        let waiting = self.state.withLock { state -> EventLoopPromise<Bool>? in
            state.channels[id] = nil
            guard state.channels.isEmpty, let promise = state.drained else { return nil }
            state.drained = nil
            return promise
        }
        waiting?.succeed(true)
    }
}

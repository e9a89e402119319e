import Foundation
import Logging
import Membership
import NIOCore
import Supervisor
import UnixSignals

/// `gateway agent`: registers one backend the gateway does not supervise, keeps its lease, checks
/// it, and drains it across every gateway of the fleet before it goes (pomelo's monitor).
///
/// States of the member key it writes (under its own lease):
/// - `starting` until the first health check passes, then `serving`;
/// - `draining` after `failures` failed checks in a row (back to `serving` when a check passes);
/// - on SIGTERM/SIGINT or a drain request (`gateway agent drain`): `draining`, then it waits until
///   every live gateway reports it has seen the drain and has nothing in flight there (at most
///   `drainTimeout`), deletes the key, revokes the lease, and only then stops the app it wraps
///   (SIGTERM to the app's own process group, SIGKILL after `stopTimeout`).
///
/// The app runs in its own process group, so a signal to the agent's group (a shell's Ctrl-C, a
/// service manager's stop) reaches the agent alone, and the app serves until the drain is done.
/// If the app exits on its own, the key is deleted at once and the agent exits with status 1.
actor Agent {
    struct Settings: Sendable {
        var endpoints: [HostPort]
        var prefix: String
        var deployment: String
        var address: HostPort
        var healthPath: String?
        var ttl: Int
        var checkInterval: Duration
        var failures: Int
        var drainTimeout: Duration
        var stopTimeout: Duration
        var command: [String]
    }

    enum Phase: Equatable {
        case starting
        case serving
        /// Out of rotation because its checks fail; it returns when they pass.
        case unhealthy
        /// Leaving for good.
        case leaving
    }

    private let settings: Settings
    private let client: EtcdClient
    private let prober: HealthProber
    private let logger: Logger
    private var phase: Phase = .starting
    /// The agent's own lease, which the member key is bound to.
    private let lease: EtcdLease
    private var app: SpawnedProcess?
    private var failedInARow = 0
    /// What ends serving: a signal, the app's exit, a drain request.
    private var stop: AsyncStream<String>.Continuation?

    private var memberKey: String {
        MemberRecord.key(prefix: settings.prefix, deployment: settings.deployment, address: settings.address.description)
    }
    private var drainKey: String {
        DrainRequest.key(prefix: settings.prefix, deployment: settings.deployment, address: settings.address.description)
    }
    private var memberID: MemberID { MemberID(deployment: settings.deployment, address: settings.address.description) }

    init(settings: Settings, group: any EventLoopGroup, logger: Logger) {
        self.settings = settings
        self.client = EtcdClient(endpoints: settings.endpoints, group: group, dialTimeout: .seconds(2))
        self.lease = EtcdLease(client: client, ttl: settings.ttl, logger: logger)
        self.prober = HealthProber(group: group)
        self.logger = logger
    }

    /// Until the backend has left (exit status 0) or the app died (1).
    func run() async -> Int32 {
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        if !settings.command.isEmpty {
            do {
                let spawner = ProcessSpawner(launcher: [GatewayService.executablePath(), "_launch", "--"], relay: .standard())
                let environment = ProcessInfo.processInfo.environment
                app = try spawner.spawn(SpawnRequest(name: "\(settings.deployment)@\(settings.address)", arguments: settings.command, environment: environment))
                logger.info("agent started the app", metadata: ["pid": "\(app!.pid)", "command": "\(settings.command.joined(separator: " "))"])
            } catch {
                logger.error("agent cannot start the app", metadata: ["error": "\(error)"])
                return 1
            }
        }
        logger.info("agent registering", metadata: metadata())
        let stop = AsyncStream<String>.makeStream()
        self.stop = stop.continuation
        let signalTask = Task {
            for await signal in signals {
                stop.continuation.yield("signal \(signal)")
            }
        }
        defer { signalTask.cancel() }
        let appTask = Task { [app] in
            guard let app else { return }
            let status = await app.exitStatus()
            stop.continuation.yield("app exited: \(status)")
        }
        defer { appTask.cancel() }

        // Register, check and keep the lease until something says stop.
        let leaseTask = Task { [lease] in await lease.run() }
        defer { leaseTask.cancel() }
        let loop = Task { await self.serveUntilCancelled() }
        let reason = await Self.first(stop.stream) ?? "stream ended"
        loop.cancel()
        _ = await loop.value

        if let app, app.hasExited {
            logger.error("agent: the app exited on its own; deregistering", metadata: metadata(["reason": "\(reason)"]))
            try? await client.delete(key: memberKey)
            await lease.revoke()
            return 1
        }
        await drain(reason: reason)
        return 0
    }

    private static func first(_ stream: AsyncStream<String>) async -> String? {
        for await value in stream { return value }
        return nil
    }

    // MARK: Serving

    private func serveUntilCancelled() async {
        var lastWritten: MemberState?
        var writtenGeneration = 0
        var etcdDown = false
        while !Task.isCancelled {
            let result = await check()
            switch (result, phase) {
            case (.passed, _):
                failedInARow = 0
                if phase != .serving {
                    logger.info("agent: health check passed; serving", metadata: metadata(["was": "\(phase)"]))
                    phase = .serving
                }
            case (.failed(let why), .serving):
                failedInARow += 1
                if failedInARow >= settings.failures {
                    logger.warning("agent: health checks failing; draining until they pass", metadata: metadata(["error": "\(why)"]))
                    phase = .unhealthy
                }
            case (.failed, _):
                failedInARow += 1
            }
            let state: MemberState = switch phase {
            case .starting: .starting
            case .serving: .serving
            case .unhealthy, .leaving: .draining
            }
            do {
                // A new grant of the lease: the key bound to the lost one goes with it.
                let current = try await lease.current()
                if current.generation != writtenGeneration { lastWritten = nil }
                // The key may have gone with a lease that expired while etcd was away.
                let missing = state == lastWritten ? try await client.get(key: memberKey) == nil : true
                if state != lastWritten || missing {
                    do {
                        try await client.put(key: memberKey, value: MemberRecord.value(state: state), lease: current.id)
                    } catch {
                        await lease.lost()
                        throw error
                    }
                    if state != lastWritten {
                        logger.info("agent: registered", metadata: metadata(["state": "\(state.rawValue)", "lease": "\(current.id)"]))
                    }
                    lastWritten = state
                    writtenGeneration = current.generation
                }
                if try await client.get(key: drainKey) != nil {
                    // Ends serving the way a signal does: one path for every reason to leave.
                    stop?.yield("drain requested")
                    return
                }
                if etcdDown {
                    logger.info("agent: etcd reachable again", metadata: metadata())
                    etcdDown = false
                }
            } catch {
                if !etcdDown {
                    logger.warning("agent: etcd unreachable; retrying", metadata: metadata(["error": "\(error)"]))
                    etcdDown = true
                }
            }
            try? await Task.sleep(for: settings.checkInterval)
        }
    }


    private func check() async -> HealthProbeResult {
        let endpoint = InstanceEndpoint(
            deployment: settings.deployment, index: 0, host: settings.address.host, port: settings.address.port, pid: app?.pid ?? 0)
        let kind: HealthCheckSpec.Kind = settings.healthPath.map { .http(path: $0) } ?? .tcp
        return await prober.probe(endpoint, check: HealthCheckSpec(kind: kind, timeout: .seconds(1)))
    }

    // MARK: Leaving

    private func drain(reason: String) async {
        phase = .leaving
        let started = ContinuousClock.now
        let deadline = started + settings.drainTimeout
        logger.info("agent: draining", metadata: metadata(["reason": "\(reason)"]))
        var drainRevision: Int64 = 0
        while drainRevision == 0 {
            do {
                drainRevision = try await client.put(
                    key: memberKey, value: MemberRecord.value(state: .draining), lease: try await lease.current().id)
            } catch {
                guard ContinuousClock.now < deadline else { break }
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
        if drainRevision != 0 {
            let outcome = await DrainWait(client: client, prefix: settings.prefix).wait(
                member: memberID, revision: drainRevision, timeout: deadline - ContinuousClock.now,
                waiting: { waitingOn in
                    self.logger.info("agent: waiting for gateways", metadata: self.metadata(["waiting_on": "\(waitingOn)"]))
                })
            switch outcome {
            case .released(let gateways):
                logger.info("agent: every gateway let go", metadata: metadata([
                    "gateways": "\(gateways)", "after": "\(ContinuousClock.now - started)",
                ]))
            case .timedOut(let waitingOn):
                logger.warning("agent: drain timeout; leaving anyway", metadata: metadata([
                    "drain_timeout": "\(settings.drainTimeout)", "waiting_on": "\(waitingOn)",
                ]))
            }
        } else {
            logger.warning("agent: etcd took no draining write; leaving anyway", metadata: metadata(["drain_timeout": "\(settings.drainTimeout)"]))
        }
        try? await client.delete(key: memberKey)
        try? await client.delete(key: drainKey)
        await lease.revoke()
        logger.info("agent: deregistered", metadata: metadata())
        guard let app else { return }
        app.signalGroup(SIGTERM)
        let exited = await withTaskGroup(of: ExitStatus?.self) { group in
            group.addTask { await app.exitStatus() }
            group.addTask { [stopTimeout = settings.stopTimeout] in
                try? await Task.sleep(for: stopTimeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        if let exited {
            logger.info("agent: the app stopped", metadata: metadata(["status": "\(exited)"]))
        } else {
            logger.warning("agent: the app did not stop in time; killing its group", metadata: metadata(["stop_timeout": "\(settings.stopTimeout)"]))
            app.signalGroup(SIGKILL)
            _ = await app.exitStatus()
        }
    }

    private func metadata(_ more: Logger.Metadata = [:]) -> Logger.Metadata {
        var all: Logger.Metadata = ["deployment": "\(settings.deployment)", "address": "\(settings.address)"]
        all.merge(more) { $1 }
        return all
    }
}

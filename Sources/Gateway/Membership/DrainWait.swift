import Membership

/// Waits until every live gateway of the fleet has let go of a backend whose key was written
/// `draining`: the one wait behind `gateway agent`'s drain and a published instance's planned
/// stop. Polls the gateways' reports every 100 ms; etcd failing meanwhile is retried until the
/// timeout (the reports cannot be read, so nothing can be known to be released).
struct DrainWait {
    enum Outcome: Sendable, Equatable {
        /// Every live gateway let go; how many reported.
        case released(gateways: Int)
        /// Still waiting on these gateways (id and why) when the time was up.
        case timedOut(waitingOn: [String: String])
    }

    let client: EtcdClient
    let prefix: String

    /// - Parameters:
    ///   - revision: the revision of the `draining` write.
    ///   - excluding: a gateway not waited for (the one draining its own instance).
    ///   - waiting: told whenever the set of gateways waited on changes.
    ///   - isolation: the caller's actor, where the closures run.
    func wait(
        member: MemberID, revision: Int64, excluding: String? = nil, timeout: Duration,
        isolation: isolated (any Actor)? = #isolation, waiting: ([String: String]) -> Void = { _ in }
    ) async -> Outcome {
        let deadline = ContinuousClock.now + timeout
        var last: [String: String] = [:]
        while true {
            if let entries = try? await client.range(prefix: GatewayReport.reportsPrefix(prefix)).entries {
                let reports = GatewayReport.reports(in: entries, prefix: prefix).filter { $0.gateway != excluding }
                let progress = DrainProgress(member: member, drainRevision: revision, reports: reports)
                if progress.isDone { return .released(gateways: reports.count) }
                if progress.waitingOn != last {
                    last = progress.waitingOn
                    waiting(last)
                }
            }
            guard ContinuousClock.now < deadline else { return .timedOut(waitingOn: last) }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }
}

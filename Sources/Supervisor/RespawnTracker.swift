/// The respawn decision for one instance slot: a pure state machine over crash events, so the
/// policy is tested without processes or clocks.
struct RespawnTracker: Sendable, Equatable {
    enum Decision: Sendable, Equatable {
        /// Start again after this delay; `attempt` counts the restarts in a row (1 = first).
        case restart(after: Duration, attempt: Int)
        /// `maxRestarts` restarts in a row did not help: stay down until an operator starts it.
        case giveUp(restarts: Int)
    }

    let policy: RespawnPolicy
    /// Restarts since the last healthy period.
    private(set) var restartsInRow = 0

    init(policy: RespawnPolicy) {
        self.policy = policy
    }

    /// An instance of this slot ended without being asked to.
    ///
    /// - Parameter healthyFor: how long it had been up (ready, or running if it never became
    ///   ready); `resetAfter` of that starts the table over.
    mutating func crashed(healthyFor: Duration) -> Decision {
        if healthyFor >= policy.resetAfter { restartsInRow = 0 }
        if let max = policy.maxRestarts, restartsInRow >= max {
            return .giveUp(restarts: restartsInRow)
        }
        restartsInRow += 1
        let delay = policy.delays[min(restartsInRow, policy.delays.count) - 1]
        return .restart(after: delay, attempt: restartsInRow)
    }

    /// An operator started the slot again (after FAILED or STOPPED): a fresh table.
    mutating func reset() {
        restartsInRow = 0
    }
}

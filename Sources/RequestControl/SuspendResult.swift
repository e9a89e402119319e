/// What a suspend found when it returned.
///
/// The supervisor decides from it whether a process may be stopped now (drained) or whether
/// it is cutting requests short (the active count says how many).
public struct SuspendResult: Sendable, Equatable {
    /// The in-flight count of the scope reached zero.
    public var drained: Bool
    /// Requests still in flight in the scope when the call returned.
    public var active: Int
    /// State of the scope when the call returned.
    public var state: SuspendState
    /// A resume cancelled this suspend while it was in progress.
    public var cancelled: Bool

    public init(drained: Bool, active: Int, state: SuspendState, cancelled: Bool) {
        self.drained = drained
        self.active = active
        self.state = state
        self.cancelled = cancelled
    }
}

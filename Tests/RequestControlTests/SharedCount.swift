import Synchronization

/// An atomic integer tasks can share (an `Atomic` local cannot be captured by a task).
final class SharedCount: Sendable {
    private let value = Atomic(0)
    func increment() { value.wrappingAdd(1, ordering: .relaxed) }
    var current: Int { value.load(ordering: .relaxed) }
}

/// A flag set once, read with acquire ordering.
final class SharedFlag: Sendable {
    private let value = Atomic(false)
    func set() { value.store(true, ordering: .releasing) }
    var isSet: Bool { value.load(ordering: .acquiring) }
}

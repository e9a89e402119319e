/// What one gateway knows of the backends registered in etcd: kept from one read of the prefix and
/// the watch that follows it, and turned into changes the gateway applies to its rotation.
///
/// A pure state machine (no I/O): the etcd client feeds it reads and watch batches, the tests feed
/// it the same. Its rules:
/// - Every write carries etcd's revision; a write at or below the revision the view already holds
///   is old news and ignored, so a watch that replays events after a reconnect applies nothing
///   twice.
/// - After a lost watch or a compaction the client reads the prefix again: `resync` compares the
///   read with the view and reports only what differs (a member gone while the watch was down
///   leaves; nothing is dropped). A read older than the view is ignored.
/// - A key whose value cannot be read is reported as a problem and does not change the member it
///   names: a typo in a value never empties a rotation.
public struct MembershipView: Sendable {
    /// One key under the prefix as etcd returned it (key and value already base64-decoded).
    public struct KeyValue: Sendable, Equatable {
        public var key: String
        public var value: [UInt8]
        public var modRevision: Int64
        public var lease: Int64

        public init(key: String, value: [UInt8], modRevision: Int64, lease: Int64 = 0) {
            self.key = key
            self.value = value
            self.modRevision = modRevision
            self.lease = lease
        }
    }

    /// One event of a watch.
    public enum Event: Sendable, Equatable {
        case put(KeyValue)
        case delete(key: String, modRevision: Int64)
    }

    public enum Change: Sendable, Equatable {
        case joined(Member)
        case changed(from: Member, to: Member)
        case left(Member)
    }

    /// What one read or watch batch did to the view.
    public struct Outcome: Sendable, Equatable {
        public var changes: [Change] = []
        public var problems: [MemberRecord.Problem] = []
        /// The input was older than the view and changed nothing.
        public var stale = false
    }

    /// The key prefix of the fleet, ending in `/`.
    public let prefix: String
    public private(set) var members: [MemberID: Member] = [:]
    /// The view holds every write up to this revision: the next watch starts after it.
    public private(set) var revision: Int64 = 0

    public init(prefix: String) {
        self.prefix = prefix
    }

    /// The members of one deployment, in address order.
    public func members(of deployment: String) -> [Member] {
        members.values.filter { $0.deployment == deployment }.sorted { $0.address < $1.address }
    }

    /// A full read of the prefix at `revision`: the view becomes what it says.
    public mutating func resync(revision: Int64, entries: [KeyValue]) -> Outcome {
        var outcome = Outcome()
        guard revision >= self.revision else {
            outcome.stale = true
            return outcome
        }
        var seen = Set<MemberID>()
        for entry in entries {
            guard let id = MemberRecord.id(key: entry.key, prefix: prefix) else { continue }
            seen.insert(id)
            put(entry, into: &outcome)
        }
        for (id, member) in members.sorted(by: { $0.key < $1.key }) where !seen.contains(id) {
            members[id] = nil
            outcome.changes.append(.left(member))
        }
        self.revision = revision
        return outcome
    }

    /// One watch response's events, in etcd's order.
    public mutating func apply(_ events: [Event]) -> Outcome {
        var outcome = Outcome()
        for event in events {
            switch event {
            case .put(let entry):
                guard entry.modRevision > revision else { continue }
                put(entry, into: &outcome)
                revision = entry.modRevision
            case .delete(let key, let modRevision):
                guard modRevision > revision else { continue }
                revision = modRevision
                guard let id = MemberRecord.id(key: key, prefix: prefix), let member = members.removeValue(forKey: id) else { continue }
                outcome.changes.append(.left(member))
            }
        }
        return outcome
    }

    /// The store moved on without a write under the prefix (a watch's progress): nothing to apply,
    /// but a later watch may start there.
    public mutating func advance(to revision: Int64) {
        self.revision = max(self.revision, revision)
    }

    private mutating func put(_ entry: KeyValue, into outcome: inout Outcome) {
        guard let result = MemberRecord.member(
            key: entry.key, value: entry.value, prefix: prefix, modRevision: entry.modRevision, lease: entry.lease
        ) else { return }
        switch result {
        case .failure(let problem):
            outcome.problems.append(problem)
        case .success(let member):
            let id = member.id
            if let old = members[id] {
                members[id] = member
                if old.state != member.state || old.weight != member.weight {
                    outcome.changes.append(.changed(from: old, to: member))
                }
            } else {
                members[id] = member
                outcome.changes.append(.joined(member))
            }
        }
    }
}

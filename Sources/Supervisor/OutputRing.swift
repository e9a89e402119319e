/// The last output lines of one instance, kept in memory for `gateway logs`.
///
/// A pure value (lines in, pages out), so the keeping and paging rules are tested without
/// processes. Two bounds, whichever bites first: `capacity` lines (1,000) and `maxBytes` of text
/// (1 MiB). The byte cap matters because a line may be up to 16 KiB (`LineAssembler`): 1,000 of
/// those would be 16 MiB per instance, and a keeper with a few dozen instances must stay small.
///
/// Every line gets a sequence number, counted from 1 for the instance slot (`shop#2`) and never
/// reused, also across restarts of the slot: a follower asks for "after N" and gets the new
/// process's lines without noticing the restart, except through ``Line/pid``.
public struct OutputRing: Sendable, Equatable {
    public static let defaultCapacity = 1000
    public static let defaultMaxBytes = 1 << 20

    public struct Line: Sendable, Equatable, Codable {
        public var sequence: Int
        /// Seconds since the epoch when the relay read it.
        public var time: Double
        public var stream: Stream
        /// The process that wrote it.
        public var pid: Int32
        /// The line as written, without the `[name] ` prefix the relay adds.
        public var text: String

        public init(sequence: Int, time: Double, stream: Stream, pid: Int32, text: String) {
            self.sequence = sequence
            self.time = time
            self.stream = stream
            self.pid = pid
            self.text = text
        }
    }

    public enum Stream: String, Sendable, Equatable, Codable {
        case stdout, stderr
    }

    public let capacity: Int
    public let maxBytes: Int
    /// Oldest first. A plain array with a moving start: appends are amortised O(1) and the
    /// dropped prefix is compacted once it is as large as what is kept.
    private var storage: [Line] = []
    private var start = 0
    /// UTF-8 bytes of the texts kept.
    public private(set) var bytes = 0
    /// The sequence number of the newest line ever appended (0: none yet).
    public private(set) var lastSequence = 0

    public init(capacity: Int = OutputRing.defaultCapacity, maxBytes: Int = OutputRing.defaultMaxBytes) {
        precondition(capacity > 0 && maxBytes > 0, "an output ring needs room")
        self.capacity = capacity
        self.maxBytes = maxBytes
    }

    public var count: Int { storage.count - start }

    /// Appends a line, dropping the oldest ones beyond the bounds; returns its sequence number.
    /// The newest line is always kept, even one larger than `maxBytes` on its own.
    @discardableResult
    public mutating func append(_ text: String, stream: Stream, pid: Int32, time: Double) -> Int {
        lastSequence += 1
        storage.append(Line(sequence: lastSequence, time: time, stream: stream, pid: pid, text: text))
        bytes += text.utf8.count
        while count > 1 && (count > capacity || bytes > maxBytes) {
            bytes -= storage[start].text.utf8.count
            start += 1
        }
        if start > 0 && start >= storage.count - start {
            storage.removeFirst(start)
            start = 0
        }
        return lastSequence
    }

    /// The newest `limit` lines with a sequence number above `after` (all kept ones when nil),
    /// oldest first, and no more than `maxBytes` of text (newest kept).
    public func lines(last limit: Int, after: Int? = nil, maxBytes: Int = .max) -> [Line] {
        guard limit > 0 else { return [] }
        var picked: [Line] = []
        var total = 0
        var index = storage.count - 1
        while index >= start, picked.count < limit {
            let line = storage[index]
            if let after, line.sequence <= after { break }
            total += line.text.utf8.count
            if total > maxBytes && !picked.isEmpty { break }
            picked.append(line)
            index -= 1
        }
        return picked.reversed()
    }
}

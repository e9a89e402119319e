/// A request for an instance's last output lines (`GET /deployments/D/instances/N/logs`).
///
/// Codable because in `gateway run` it travels from the worker to the keeper, which reads the
/// pipes and keeps the lines.
public struct OutputQuery: Sendable, Equatable, Codable {
    /// `shop#2`.
    public var instance: String
    /// At most this many lines, the newest.
    public var lines: Int
    /// Only lines with a larger sequence number (nil: the newest `lines`).
    public var after: Int?
    /// Milliseconds to wait for a line after `after` when there is none yet (a long poll for
    /// `gateway logs -f`); 0 answers at once.
    public var waitMilliseconds: Int

    public init(instance: String, lines: Int, after: Int? = nil, waitMilliseconds: Int = 0) {
        self.instance = instance
        self.lines = lines
        self.after = after
        self.waitMilliseconds = waitMilliseconds
    }
}

/// The answer to an ``OutputQuery``.
public struct OutputPage: Sendable, Equatable, Codable {
    public var lines: [OutputRing.Line]
    /// The newest sequence number of the instance (0: it printed nothing yet): the `after` of
    /// the next poll.
    public var lastSequence: Int
    /// Lines were left out between `after` and the first line given (dropped from the ring, or
    /// beyond `lines`).
    public var gap: Bool

    public init(lines: [OutputRing.Line], lastSequence: Int, gap: Bool) {
        self.lines = lines
        self.lastSequence = lastSequence
        self.gap = gap
    }
}

/// Where the admin API gets instance output from: the ``OutputLog`` of this process, or the
/// keeper's over its link.
public protocol OutputLogReading: Sendable {
    func read(_ query: OutputQuery) async -> Result<OutputPage, OutputLogError>
}

/// Why output could not be read; the message says what to do.
public struct OutputLogError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var description: String { message }

    public init(_ message: String) {
        self.message = message
    }
}

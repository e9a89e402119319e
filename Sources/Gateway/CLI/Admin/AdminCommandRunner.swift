import ArgumentParser

/// Runs the body of an admin subcommand and turns its failures into the documented exit codes
/// (see `AdminExitCode`) and a `gateway: ...` line on stderr.
enum AdminCommandRunner {
    /// The request timeout of operations that may wait for a drain (restart, stop, start,
    /// reload, shutdown, suspend): drains can be long, and the server answers when done.
    static let operationTimeout: Duration = .seconds(15 * 60)
    /// The request timeout of reads and of resume, which answer at once.
    static let queryTimeout: Duration = .seconds(10)
    /// What the client adds to a `--timeout` it sends to the server, so the server's own answer
    /// (drained or not) arrives before the client gives up.
    static let serverTimeoutMargin: Duration = .seconds(30)

    static func run(_ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let failure as AdminFailure {
            AdminOutput.error(failure.message)
            throw AdminExitCode.failed.exitCode
        } catch let error as AdminClientError {
            AdminOutput.error(error.description)
            throw AdminExitCode.unreachable.exitCode
        }
    }

    /// How long to wait for an answer when `seconds` is sent to the server as its timeout:
    /// that plus a margin; no limit for a negative one (the server then waits for ever, too).
    static func clientTimeout(forServerTimeout seconds: Double?) -> Duration? {
        guard let seconds else { return Self.operationTimeout }
        guard seconds >= 0 else { return nil }
        return .milliseconds(Int64((seconds * 1000).rounded(.up))) + Self.serverTimeoutMargin
    }

    /// Validates a `--timeout` value: a finite number of seconds, not negative unless allowed.
    static func validateTimeout(_ seconds: Double?, allowNegative: Bool, allowZero: Bool = true) throws {
        guard let seconds else { return }
        guard seconds.isFinite else {
            throw ValidationError("--timeout must be a finite number of seconds, got '\(seconds)'")
        }
        if !allowNegative && seconds < 0 {
            throw ValidationError("--timeout must not be negative, got '\(AdminFormat.trimmed(seconds))'")
        }
        if !allowZero && seconds == 0 {
            throw ValidationError("--timeout must be more than 0 seconds, got '0'")
        }
        // The admin API's own maximum, so the CLI does not send what the server refuses; also
        // keeps the conversion to Duration from overflowing. Any negative value means for ever.
        guard seconds <= Double(ConfigBounds.maxDurationSeconds) else {
            throw ValidationError(
                "--timeout must be at most \(ConfigBounds.maxDurationSeconds) seconds (365 days), got '\(AdminFormat.trimmed(seconds))'")
        }
    }
}

import ArgumentParser

/// The exit codes of the admin subcommands (`status`, `restart`, `stop`, `start`, `reload`,
/// `shutdown`, `suspend`, `resume`), so a deploy script can tell "the gateway said no" from "there
/// is no gateway to ask":
///
/// - `0`: the gateway did what was asked.
/// - `1`: the gateway answered, but the operation failed or was refused: any non-2xx answer
///   (unknown deployment, a restart already running, ...), a restart with `ok: false`, a reload
///   with `ok: false`, a suspend that timed out (`drained: false`) or was cancelled by a resume.
/// - `2`: the admin API could not be reached: connection refused, connect or request timeout,
///   the connection closed before a whole answer, an answer that is not HTTP, or a 2xx answer that
///   is not the admin API's JSON (something else listens at that address).
/// - `64`: bad usage (argument-parser's validation exit code): an unknown option, an invalid
///   SCOPE, `--admin` URL or `--timeout`; the message names the value.
enum AdminExitCode: Int32, Sendable {
    case success = 0
    case failed = 1
    case unreachable = 2
    case usage = 64

    var exitCode: ExitCode { ExitCode(self.rawValue) }

    /// The table above, for each command's `discussion`.
    static let discussion = """
        Exit codes: 0 success; 1 the gateway answered but the operation failed or was refused \
        (a non-2xx answer, ok=false, drained=false, cancelled); 2 the admin API could not be \
        reached (connection refused, timeout, not HTTP, not the admin API); 64 bad usage \
        (invalid argument, SCOPE, --admin URL or --timeout). Errors go to stderr as \
        "gateway: <message>", with the gateway's own message when it gave one.
        """
}

import ArgumentParser
import Supervisor

/// `gateway _watchdog`: kills the gateway's backend process groups if the gateway dies.
///
/// Started by `GroupWatchdogClient` with a socket on stdin; see `GroupWatchdog` for the protocol.
/// It ignores SIGINT/SIGTERM/SIGHUP so that whatever ends the gateway leaves it alive to clean
/// up, and deliberately sets no parent-death signal: it must outlive the gateway, and it learns of
/// the gateway's death from end of file on stdin instead.
struct WatchdogCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "_watchdog",
        abstract: "Kill the gateway's process groups when it dies (internal).",
        shouldDisplay: false
    )

    func run() throws {
        GroupWatchdog.ignoreTerminationSignals()
        GroupWatchdog.run(input: 0)
    }
}

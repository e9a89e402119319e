import Synchronization
@testable import Supervisor

/// A relay sink that keeps every line, for tests to inspect.
final class LineCollector: Sendable {
    struct Line: Sendable, Equatable {
        var text: String
        var stream: OutputRelay.OutputStream
    }

    private let storage = Mutex<[Line]>([])

    var lines: [Line] { storage.withLock { $0 } }

    func texts(_ stream: OutputRelay.OutputStream) -> [String] {
        lines.filter { $0.stream == stream }.map(\.text)
    }

    func append(_ text: String, _ stream: OutputRelay.OutputStream) {
        storage.withLock { $0.append(Line(text: text, stream: stream)) }
    }

    func relay(maxLineBytes: Int = 16 * 1024) -> OutputRelay {
        OutputRelay(maxLineBytes: maxLineBytes) { [self] text, stream in
            append(text, stream)
        }
    }

    /// The first stdout line after `prefix`, parsed as a pid (scripts echo `$!`), waiting for it.
    func pid(after prefix: String, within timeout: Duration = .seconds(10)) async -> Int32? {
        var found: Int32?
        _ = await eventually(within: timeout) {
            found = self.texts(.stdout).lazy
                .filter { $0.hasPrefix(prefix) }
                .compactMap { Int32($0.dropFirst(prefix.count)) }
                .first
            return found != nil
        }
        return found
    }
}

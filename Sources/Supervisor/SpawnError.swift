import Glibc

/// A process could not be started.
///
/// It names the instance, the command and the system's reason, because that is what the operator
/// needs to fix a config: "cannot start 'python3 app.py' for shop#2: No such file or directory".
public struct SpawnError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The instance it was for.
    public var name: String
    /// The command as requested (argv).
    public var arguments: [String]
    /// The `errno` value that explains the failure.
    public var errno: Int32
    /// What was being done when it failed, when it is not the command itself (for example
    /// "working directory '/srv/shop'").
    public var context: String?

    public init(name: String, arguments: [String], errno: Int32, context: String? = nil) {
        self.name = name
        self.arguments = arguments
        self.errno = errno
        self.context = context
    }

    public var description: String {
        // errno 0: the reason came from elsewhere (the keeper) and is complete in `context`.
        if errno == 0, let context { return context }
        var text = "cannot start '\(arguments.joined(separator: " "))' for \(name): "
        if let context {
            text += "\(context): "
        }
        text += String(cString: strerror(errno))
        return text
    }
}

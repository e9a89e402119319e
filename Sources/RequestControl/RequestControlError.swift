/// Errors of the suspend/resume API.
///
/// Carries the scope that was asked for, so the operator sees which name was wrong.
public enum RequestControlError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The scope names a deployment, entry point or backend that is not in the configuration.
    case unknownScope(SuspendScope)

    public var description: String {
        switch self {
        case .unknownScope(let scope):
            return "unknown \(scope)"
        }
    }
}

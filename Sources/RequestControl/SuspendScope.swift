/// What a suspend or resume applies to.
///
/// Scopes nest (gateway > deployment > entry point; backends belong to a deployment) but each
/// has its own state: suspending the gateway and resuming a deployment leaves the deployment's
/// requests refused, because admission checks every level.
public enum SuspendScope: Hashable, Sendable, CustomStringConvertible {
    /// Every request of the gateway.
    case gateway
    /// Every request of one deployment.
    case deployment(String)
    /// The requests arriving through one entry point of a deployment.
    case entryPoint(deployment: String, entryPoint: String)
    /// The requests forwarded to one backend address of a deployment.
    case backend(deployment: String, address: String)

    public var description: String {
        switch self {
        case .gateway:
            return "gateway"
        case .deployment(let name):
            return "deployment '\(name)'"
        case .entryPoint(let deployment, let entryPoint):
            return "entry point '\(entryPoint)' of deployment '\(deployment)'"
        case .backend(let deployment, let address):
            return "backend '\(address)' of deployment '\(deployment)'"
        }
    }
}

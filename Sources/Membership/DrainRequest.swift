/// `gateway agent drain` asks the agent of a backend to drain it by writing this key; the agent
/// polls it, so the request never races the agent's own writes of the member key.
public enum DrainRequest {
    public static func key(prefix: String, deployment: String, address: String) -> String {
        "\(prefix)deployments/\(deployment)/drain-requests/\(address)"
    }
}

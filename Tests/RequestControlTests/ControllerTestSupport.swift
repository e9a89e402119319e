import Synchronization
import Testing

@testable import RequestControl

/// shop: entry points "http" and "admin", backends b1 and b2; blog: entry point "http".
func makeConfiguration(
    globalLimit: Int? = nil, shopLimit: Int? = nil, httpLimit: Int? = nil
) -> RequestControlConfiguration {
    RequestControlConfiguration(
        globalLimit: globalLimit,
        deployments: [
            .init(
                name: "shop", limit: shopLimit,
                entryPoints: [.init(name: "http", limit: httpLimit), .init(name: "admin", limit: nil)],
                backends: ["127.0.0.1:9001", "127.0.0.1:9002"]),
            .init(name: "blog", limit: nil, entryPoints: [.init(name: "http", limit: nil)], backends: []),
        ])
}

extension RequestController {
    func point(_ deployment: String, _ entryPoint: String) -> ControlPoint {
        controlPoint(deployment: deployment, entryPoint: entryPoint)!
    }
}

extension ControlPoint {
    /// Begins a request that must be admitted.
    func admit(sourceLocation: SourceLocation = #_sourceLocation) -> RequestToken? {
        switch beginRequest() {
        case .run(let token):
            return token
        case .rejected(let reason):
            Issue.record("rejected: \(reason)", sourceLocation: sourceLocation)
            return nil
        }
    }

    /// The reason of a rejection, nil if admitted (the token is then completed with 200).
    func rejection() -> RejectionReason? {
        switch beginRequest() {
        case .run(let token):
            token.complete(status: 200)
            return nil
        case .rejected(let reason):
            return reason
        }
    }
}

/// Which level each admin endpoint needs: the one table of it, so the server, the tests and the
/// README's table cannot drift apart.
enum AdminAccessPolicy {
    enum Requirement: Sendable, Equatable {
        /// Anyone, with or without credentials: load balancers and probes.
        case open
        case level(AdminLevel)
    }

    /// What `method path` needs. The path decides, not the method, so a viewer who tries a POST
    /// learns "needs operator" rather than which methods exist; an unknown path needs `viewer`,
    /// so nobody without credentials can probe for endpoints.
    static func requirement(method: String, path: String, publicMetrics: Bool) -> Requirement {
        switch path {
        case "/health", "/ready":
            return .open
        case "/metrics":
            return publicMetrics ? .open : .level(.viewer)
        case "/session":
            // Signing in is how credentials are first presented; it checks them itself.
            return .open
        case "/", "/stats", "/processes", "/events", "/session/end":
            return .level(.viewer)
        case "/suspend", "/resume", "/reload":
            return .level(.operator)
        case "/shutdown", "/upgrade":
            return .level(.admin)
        default:
            if path.hasPrefix("/deployments/") {
                // Reading an instance's output is a viewer's; everything else there acts.
                return path.hasSuffix("/logs") ? .level(.viewer) : .level(.operator)
            }
            return .level(.viewer)
        }
    }

    /// A request that changes something: it needs the browser checks and goes to the audit log.
    static func isStateChanging(method: String) -> Bool {
        method != "GET" && method != "HEAD"
    }
}

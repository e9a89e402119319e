import Foundation

/// `membership: {etcd: {endpoints, prefix, dial_timeout}}`: backends registered in etcd join the
/// deployments beside the fixed and supervised ones (roadmap step 8).
struct MembershipConfig: Sendable, Equatable {
    /// etcd's client addresses (`HOST:PORT` or `http://HOST:PORT`), tried in turn.
    var endpoints: [HostPort]
    /// Every key of the fleet starts with it; always ends in `/`.
    var prefix = "/gateway/"
    /// How long one connection attempt to an endpoint may take.
    var dialTimeout: Duration = .seconds(2)
    /// This gateway's name in the fleet (its report is `PREFIX/gateways/ID/routes`); nil: the
    /// host name and the first listener's address.
    var gatewayID: String?

    /// The id the gateway reports under.
    func resolvedGatewayID(listen: HostPort) -> String {
        if let gatewayID { return gatewayID }
        var name = [CChar](repeating: 0, count: 256)
        let host = gethostname(&name, name.count) == 0 ? String(cString: name) : "gateway"
        return "\(host)-\(listen)".replacingOccurrences(of: "/", with: "_")
    }
}

extension HostPort {
    /// An etcd client address as the configuration and `gateway agent --etcd` take it:
    /// `HOST:PORT` or `http://HOST:PORT` (a trailing `/` allowed); TLS is not supported yet.
    static func parseEtcdEndpoint(_ text: String) -> Result<HostPort, ConfigValueProblem> {
        var rest = text
        if rest.hasPrefix("https://") { return .failure(ConfigValueProblem("etcd over TLS is not supported yet; give a http:// or HOST:PORT endpoint")) }
        if rest.hasPrefix("http://") { rest.removeFirst("http://".count) }
        if rest.hasSuffix("/") { rest.removeLast() }
        return parse(rest).mapError { ConfigValueProblem("expected an etcd client address like 127.0.0.1:2379: \($0.message)") }
    }
}

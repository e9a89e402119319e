import Yams
import Foundation
// TEMPORARY smoke-test loader; replaced by ConfigLoader from the cfg branch.
enum ConfigLoader {
    struct Raw: Decodable {
        var listen: String
        var admin: [String: String]?
        var limits: [String: Int]?
        var deployments: [D]
        struct D: Decodable { var name: String; var max_requests: Int?; var backends: [String]; var entry_points: [E]? ; var hosts: [String]?; var path_prefix: String? }
        struct E: Decodable { var name: String; var path_prefix: String; var methods: [String]?; var max_requests: Int? }
    }
    static func hp(_ s: String) -> HostPort { let p = s.split(separator: ":"); return HostPort(host: String(p[0]), port: Int(p[1])!) }
    static func load(path: String) throws -> GatewayConfig {
        let raw = try YAMLDecoder().decode(Raw.self, from: String(contentsOfFile: path, encoding: .utf8))
        return GatewayConfig(listen: hp(raw.listen), admin: AdminConfig(listen: hp(raw.admin?["listen"] ?? "127.0.0.1:9901")),
          limits: LimitsConfig(maxRequests: raw.limits?["max_requests"], maxHeaderBytes: 65536, maxBodyBytes: nil),
          shutdownTimeout: .seconds(5), threads: nil, timeouts: GatewayConfig.defaultTimeouts,
          deployments: raw.deployments.map { d in DeploymentConfig(name: d.name, hosts: d.hosts, pathPrefix: d.path_prefix ?? "/", maxRequests: d.max_requests,
            entryPoints: d.entry_points?.map { EntryPointConfig(name: $0.name, pathPrefix: $0.path_prefix, methods: $0.methods, maxRequests: $0.max_requests) } ?? [EntryPointConfig(name: "default", pathPrefix: "/", methods: nil, maxRequests: nil)],
            backends: d.backends.map(hp)) })
    }
}

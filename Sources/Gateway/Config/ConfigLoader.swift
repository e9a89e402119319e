import ProxyRules
import Supervisor
import Yams

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads the gateway's YAML configuration into a validated `GatewayConfig`.
///
/// It walks Yams' node tree rather than decoding with `Codable`, because a node knows its line
/// and column: every error names the file, the position and the key path, which `Codable`'s
/// errors cannot. Validation that spans values (unique names, deployments that could never be
/// told apart) happens here too, so whatever this returns can be served as is.
enum ConfigLoader {
    /// Reads and parses the file at `path`; errors are reported against `path` as given.
    static func load(path: String) throws(ConfigError) -> GatewayConfig {
        let text = try Self.readFile(path)
        return try Self.parse(yaml: text, source: path)
    }

    /// Parses YAML text; `source` is the name errors give for it.
    static func parse(yaml: String, source: String) throws(ConfigError) -> GatewayConfig {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw Self.syntaxError(error, source: source)
        } catch {
            throw ConfigError(source: source, message: "cannot parse YAML: \(error)")
        }
        guard let root else {
            throw ConfigError(source: source, line: 1, column: 1, message: "the configuration is empty")
        }
        let document = ConfigNode(node: root, keyPath: "", source: source)
        if document.isNull {
            throw document.error("the configuration is empty")
        }
        guard case .mapping = root else {
            throw document.error("expected a mapping of settings at the top level, got \(document.shown)")
        }
        return try Self.gateway(document)
    }

    // MARK: Sections

    private static func gateway(_ node: ConfigNode) throws(ConfigError) -> GatewayConfig {
        let map = try node.mapping(known: [
            "listen", "listeners", "admin", "limits", "shutdown_timeout", "threads", "timeouts", "http2", "deployments",
            "upgrade_protocols", "access_log", "membership",
        ])
        let (listeners, listenNode) = try Self.listeners(node, map)
        var admin = AdminConfig(listen: HostPort(host: "127.0.0.1", port: 9901))
        var adminListenNode = listenNode
        if let adminNode = map.optional("admin") {
            let parsed = try AdminConfigParser.parse(adminNode, baseDirectory: Self.directory(of: node.source))
            admin = parsed.config
            adminListenNode = parsed.listenNode ?? listenNode
        }
        for listener in listeners where admin.listen == listener.listen && listener.listen.port != 0 {
            throw adminListenNode.error("the admin API cannot listen on \(listener.listen) too: the proxy listens there")
        }
        var limits = LimitsConfig(maxRequests: nil, maxHeaderBytes: GatewayConfig.defaultMaxHeaderBytes, maxBodyBytes: nil)
        if let limitsNode = map.optional("limits") {
            let limitsMap = try limitsNode.mapping(known: ["max_requests", "max_header_bytes", "max_body_bytes"])
            limits.maxRequests = try limitsMap.optional("max_requests")?.positiveInt(max: ConfigBounds.maxRequests)
            limits.maxHeaderBytes =
                try limitsMap.optional("max_header_bytes")?.positiveInt(max: ConfigBounds.maxHeaderBytes, why: "16 MiB")
                ?? limits.maxHeaderBytes
            limits.maxBodyBytes = try limitsMap.optional("max_body_bytes")?.positiveInt(max: ConfigBounds.maxBodyBytes)
        }
        let shutdownTimeout = try map.optional("shutdown_timeout")?.duration(allowZero: true) ?? .seconds(30)
        let threads = try map.optional("threads")?.positiveInt(max: ConfigBounds.threads)
        var timeouts = GatewayConfig.defaultTimeouts
        if let timeoutsNode = map.optional("timeouts") {
            timeouts = try Self.timeouts(timeoutsNode)
        }
        var http2 = HTTP2Config()
        if let http2Node = map.optional("http2") {
            http2 = try Self.http2(http2Node)
        }
        let membership = try map.optional("membership").map { node throws(ConfigError) in try Self.membership(node) }
        let deployments = try Self.deployments(map.required("deployments"), registered: membership != nil)
        var upgradeProtocols = ["websocket"]
        if let node = map.optional("upgrade_protocols") { upgradeProtocols = try Self.upgradeProtocols(node) }
        var config = GatewayConfig(
            listeners: listeners,
            admin: admin,
            limits: limits,
            shutdownTimeout: shutdownTimeout,
            threads: threads,
            timeouts: timeouts,
            http2: http2,
            deployments: deployments
        )
        config.upgradeProtocols = upgradeProtocols
        if let node = map.optional("access_log") { config.accessLog = try Self.accessLog(node) }
        config.membership = membership
        return config
    }

    /// `membership: {etcd: {endpoints: [HOST:PORT or http://HOST:PORT, ...], prefix: /gateway/,
    /// dial_timeout: 2s}}`.
    private static func membership(_ node: ConfigNode) throws(ConfigError) -> MembershipConfig {
        let map = try node.mapping(known: ["etcd", "gateway_id"])
        let etcdNode = try map.required("etcd")
        let etcd = try etcdNode.mapping(known: ["endpoints", "prefix", "dial_timeout"])
        let endpointsNode = try etcd.required("endpoints")
        var endpoints: [HostPort] = []
        for item in try endpointsNode.list() {
            let text = try item.string(expected: "an etcd client address like 127.0.0.1:2379")
            switch HostPort.parseEtcdEndpoint(text) {
            case .success(let address):
                if endpoints.contains(address) { throw item.error("etcd endpoint \(address) is listed twice") }
                endpoints.append(address)
            case .failure(let problem):
                throw item.error("\(problem.message), got \(item.shown)")
            }
        }
        guard !endpoints.isEmpty else { throw endpointsNode.error("expected at least one etcd endpoint") }
        var config = MembershipConfig(endpoints: endpoints)
        if let prefixNode = etcd.optional("prefix") {
            let prefix = try prefixNode.string(expected: "a key prefix like /gateway/")
            guard prefix.hasPrefix("/"), prefix.hasSuffix("/"), prefix.count > 1, !prefix.utf8.contains(0) else {
                throw prefixNode.error("expected a key prefix that starts and ends with /, like /gateway/, got \(prefixNode.shown)")
            }
            config.prefix = prefix
        }
        if let timeoutNode = etcd.optional("dial_timeout") { config.dialTimeout = try timeoutNode.duration(allowZero: false) }
        if let idNode = map.optional("gateway_id") {
            let id = try idNode.string(expected: "a name for this gateway in the fleet")
            let allowed = id.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || "-_.:".utf8.contains(byte)
            }
            guard !id.isEmpty, id.count <= 128, allowed else {
                throw idNode.error("expected a gateway id of letters, digits and - _ . : (at most 128), got \(idNode.shown)")
            }
            config.gatewayID = id
        }
        return config
    }

    /// `access_log: {path: PATH or "-", format: json or combined}`; a relative path is taken from
    /// the configuration file's directory, like certificate paths. Whether the file can be opened
    /// is found when the worker starts (or reloads), where a failure names it.
    private static func accessLog(_ node: ConfigNode) throws(ConfigError) -> AccessLogConfig {
        let map = try node.mapping(known: ["path", "format"])
        let pathNode = try map.required("path")
        var path = try pathNode.string(expected: "a file path, or \"-\" for the worker's standard output")
        guard !path.isEmpty, !path.utf8.contains(0) else {
            throw pathNode.error("expected a file path, or \"-\" for the worker's standard output, got \(pathNode.shown)")
        }
        if path != "-", !path.hasPrefix("/") { path = ProcessConfigParser.join(Self.directory(of: node.source), path) }
        var config = AccessLogConfig(path: path)
        if let formatNode = map.optional("format") {
            let name = try formatNode.string(expected: "json or combined")
            guard let format = AccessLogFormat(rawValue: name) else {
                throw formatNode.error("unknown access log format \(ConfigNode.quoted(name)); expected json or combined")
            }
            config.format = format
        }
        return config
    }

    /// Tokens of `Upgrade` (RFC 9110 7.8) the gateway tunnels; h2c is never one: it would hand
    /// the backend connection to a protocol the gateway does not proxy (RFC 9113 deprecates it).
    private static func upgradeProtocols(_ node: ConfigNode) throws(ConfigError) -> [String] {
        var tokens: [String] = []
        for item in try node.list() {
            let token = try item.string(expected: "a protocol name").lowercased()
            let allowed = token.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x61 && byte <= 0x7A) || "!#$%&'*+-.^_`|~/".utf8.contains(byte)
            }
            guard !token.isEmpty, allowed else { throw item.error("expected a protocol token like websocket, got \(item.shown)") }
            guard token != "h2c" else {
                throw item.error("h2c cannot be tunnelled: clients that ask for it get HTTP/1.1 (use an h2c listener for HTTP/2)")
            }
            if !tokens.contains(token) { tokens.append(token) }
        }
        return tokens
    }

    /// `listen: ADDRESS` (one cleartext HTTP/1.1 listener) or `listeners: [...]`; returns the
    /// listeners and the node the first address came from.
    private static func listeners(
        _ node: ConfigNode, _ map: ConfigMapping
    ) throws(ConfigError) -> ([ListenerConfig], ConfigNode) {
        switch (map.optional("listen"), map.optional("listeners")) {
        case (nil, nil):
            throw node.error("give `listen` (one HTTP/1.1 address) or `listeners`")
        case (_?, _?):
            throw node.error("give `listen` or `listeners`, not both")
        case (let listenNode?, nil):
            return ([.cleartext(try listenNode.hostPort(allowAnyPort: true))], listenNode)
        case (nil, let listNode?):
            let items = try listNode.list()
            guard !items.isEmpty else { throw listNode.error("expected at least one listener") }
            var result: [ListenerConfig] = []
            var firstAddress = listNode
            for (index, item) in items.enumerated() {
                let map = try item.mapping(known: ["listen", "protocols", "tls"])
                let addressNode = try map.required("listen")
                if index == 0 { firstAddress = addressNode }
                let listen = try addressNode.hostPort(allowAnyPort: true)
                if listen.port != 0, let other = result.firstIndex(where: { $0.listen == listen }) {
                    throw addressNode.error("listeners[\(other)] already listens on \(listen)")
                }
                let tls = try map.optional("tls").map { (tlsNode) throws(ConfigError) in
                    try Self.tls(tlsNode, baseDirectory: Self.directory(of: node.source))
                }
                var protocols: [ListenerProtocol] = tls == nil ? [.http1] : [.h2, .http1]
                if let protocolsNode = map.optional("protocols") {
                    protocols = try Self.protocols(protocolsNode, tls: tls != nil)
                }
                result.append(ListenerConfig(listen: listen, protocols: protocols, tls: tls))
            }
            return (result, firstAddress)
        }
    }

    private static func protocols(_ node: ConfigNode, tls: Bool) throws(ConfigError) -> [ListenerProtocol] {
        let items = try node.list()
        guard !items.isEmpty else { throw node.error("expected at least one protocol (http1, h2c, h2)") }
        var protocols: [ListenerProtocol] = []
        for item in items {
            let name = try item.string(expected: "a protocol name")
            guard let value = ListenerProtocol(rawValue: name) else {
                throw item.error("unknown protocol \(ConfigNode.quoted(name)); expected http1, h2c or h2")
            }
            if value == .h2c, tls {
                throw item.error("h2c is HTTP/2 without TLS; a TLS listener offers HTTP/2 as h2")
            }
            if value == .h2, !tls {
                throw item.error("h2 is HTTP/2 over TLS and needs `tls`; cleartext HTTP/2 is h2c")
            }
            if protocols.contains(value) { throw item.error("protocol \(name) is listed twice") }
            protocols.append(value)
        }
        return protocols
    }

    /// `tls: {cert: PATH, key: PATH}` or `tls: {certificates: [{cert, key}, ...]}`; relative paths
    /// are taken from the configuration file's directory. The files are read when the listener
    /// starts (and on reload), where a bad one is refused with its name.
    private static func tls(_ node: ConfigNode, baseDirectory: String) throws(ConfigError) -> TLSListenerConfig {
        let map = try node.mapping(known: ["cert", "key", "certificates"])
        func pair(_ map: ConfigMapping) throws(ConfigError) -> TLSCertificateFiles {
            func path(_ key: String) throws(ConfigError) -> String {
                let value = try map.required(key).string(expected: "a file path")
                return value.hasPrefix("/") ? value : ProcessConfigParser.join(baseDirectory, value)
            }
            return TLSCertificateFiles(cert: try path("cert"), key: try path("key"))
        }
        if let list = map.optional("certificates") {
            if map.optional("cert") != nil || map.optional("key") != nil {
                throw node.error("give `cert` and `key`, or `certificates`, not both")
            }
            let items = try list.list()
            guard !items.isEmpty else { throw list.error("expected at least one {cert, key}") }
            var certificates: [TLSCertificateFiles] = []
            for item in items {
                certificates.append(try pair(try item.mapping(known: ["cert", "key"])))
            }
            return TLSListenerConfig(certificates: certificates)
        }
        return TLSListenerConfig(certificates: [try pair(map)])
    }

    private static func http2(_ node: ConfigNode) throws(ConfigError) -> HTTP2Config {
        let map = try node.mapping(known: ["max_concurrent_streams", "initial_window_bytes", "max_frame_bytes", "stall_timeout"])
        var http2 = HTTP2Config()
        if let value = map.optional("max_concurrent_streams") {
            http2.maxConcurrentStreams = try value.positiveInt(max: ConfigBounds.http2Value, why: "2^31-1")
        }
        if let value = map.optional("initial_window_bytes") {
            http2.initialWindowBytes = try value.positiveInt(max: ConfigBounds.http2Value, why: "2^31-1, the largest HTTP/2 window")
        }
        if let value = map.optional("max_frame_bytes") {
            http2.maxFrameBytes = try value.positiveInt(max: 16_777_215)
            guard (16_384...16_777_215).contains(http2.maxFrameBytes) else {
                throw value.error("HTTP/2 frame sizes go from 16384 to 16777215 bytes, got \(http2.maxFrameBytes)")
            }
        }
        if let value = map.optional("stall_timeout") { http2.stallTimeout = try value.duration(allowZero: false) }
        return http2
    }

    private static func timeouts(_ node: ConfigNode) throws(ConfigError) -> TimeoutsConfig {
        let map = try node.mapping(known: [
            "connect", "request_header", "idle", "backend_response", "pre_suspend", "request_body", "tunnel_idle",
            "park_idle",
        ])
        var timeouts = GatewayConfig.defaultTimeouts
        if let value = map.optional("connect") { timeouts.connect = try value.duration(allowZero: false) }
        if let value = map.optional("request_header") { timeouts.requestHeader = try value.duration(allowZero: false) }
        if let value = map.optional("idle") { timeouts.idle = try value.duration(allowZero: false) }
        if let value = map.optional("backend_response") {
            timeouts.backendResponse = try value.duration(allowZero: false)
        }
        if let value = map.optional("request_body") { timeouts.requestBody = try value.duration(allowZero: false) }
        if let value = map.optional("tunnel_idle") { timeouts.tunnelIdle = try value.duration(allowZero: false) }
        // Zero: never park.
        if let value = map.optional("park_idle") { timeouts.parkIdle = try value.duration(allowZero: true) }
        // Zero is meaningful here: announce the suspend, but do not wait.
        if let value = map.optional("pre_suspend") { timeouts.preSuspend = try value.duration(allowZero: true) }
        return timeouts
    }

    private static func deployments(_ node: ConfigNode, registered: Bool) throws(ConfigError) -> [DeploymentConfig] {
        let items = try node.list()
        guard !items.isEmpty else {
            throw node.error("expected at least one deployment")
        }
        var result: [DeploymentConfig] = []
        var seen: [String: Int] = [:]
        for (index, item) in items.enumerated() {
            let deployment = try Self.deployment(item, registered: registered)
            if let first = seen[deployment.name] {
                throw try item.mapping(known: Self.deploymentKeys).required("name")
                    .error("duplicate deployment name \(ConfigNode.quoted(deployment.name)) (also deployments[\(first)])")
            }
            seen[deployment.name] = index
            for (otherIndex, other) in result.enumerated() where Self.indistinguishable(deployment, other) {
                let hosts = deployment.hosts.map { $0.joined(separator: ", ") } ?? "any host"
                throw item.error(
                    "deployment \(ConfigNode.quoted(deployment.name)) cannot be told apart from "
                        + "\(ConfigNode.quoted(other.name)) (deployments[\(otherIndex)]): both match "
                        + "\(hosts) with path_prefix \(ConfigNode.quoted(deployment.pathPrefix))"
                )
            }
            result.append(deployment)
        }
        return result
    }

    private static let deploymentKeys = [
        "name", "hosts", "path_prefix", "max_requests", "entry_points", "backends", "process",
        "retries", "eject_after", "eject_for", "tunnel_grace", "publish", "fleet_max_unavailable",
    ]

    /// `registered`: members may come from etcd, so `backends: []` is a deployment whose backends
    /// are all registered ones.
    private static func deployment(_ node: ConfigNode, registered: Bool) throws(ConfigError) -> DeploymentConfig {
        let map = try node.mapping(known: Self.deploymentKeys)
        let name = try Self.name(map.required("name"))
        var hosts: [String]?
        if let hostsNode = map.optional("hosts") {
            hosts = try Self.hosts(hostsNode)
        }
        var pathPrefix = "/"
        if let prefixNode = map.optional("path_prefix") {
            pathPrefix = try Self.pathPrefix(prefixNode)
        }
        let maxRequests = try map.optional("max_requests")?.positiveInt(max: ConfigBounds.maxRequests)
        var entryPoints = [EntryPointConfig(name: "default", pathPrefix: "/", methods: nil, maxRequests: nil)]
        if let entryPointsNode = map.optional("entry_points") {
            entryPoints = try Self.entryPoints(entryPointsNode)
        }
        var process: ProcessSpec?
        switch (map.optional("backends"), map.optional("process")) {
        case (nil, nil):
            throw node.error("give the deployment's `backends` (addresses) or a `process` the gateway runs")
        case (_?, _?):
            throw node.error("give `backends` or `process`, not both")
        case (nil, let processNode?):
            process = try ProcessConfigParser.parse(processNode, baseDirectory: Self.directory(of: node.source))
        case (_?, nil):
            break
        }
        let backendItems = try map.optional("backends")?.list() ?? []
        if let backendsNode = map.optional("backends"), backendItems.isEmpty, !registered {
            throw backendsNode.error("expected at least one backend address (an empty list only with `membership`, whose registered backends fill it)")
        }
        var backends: [HostPort] = []
        for item in backendItems {
            let address = try item.hostPort()
            if backends.contains(address) {
                throw item.error("backend \(address) is listed twice")
            }
            backends.append(address)
        }
        var deployment = DeploymentConfig(
            name: name,
            hosts: hosts,
            pathPrefix: pathPrefix,
            maxRequests: maxRequests,
            entryPoints: entryPoints,
            backends: backends,
            process: process
        )
        if let value = map.optional("retries") { deployment.retries = try value.nonNegativeInt(max: ConfigBounds.retries) }
        if let value = map.optional("eject_after") {
            deployment.ejectAfter = try value.nonNegativeInt(max: ConfigBounds.attempts)
        }
        if let value = map.optional("eject_for") { deployment.ejectFor = try value.duration(allowZero: false) }
        // Zero is meaningful: close the tunnels as soon as the drain starts.
        if let value = map.optional("tunnel_grace") { deployment.tunnelGrace = try value.duration(allowZero: true) }
        if let value = map.optional("fleet_max_unavailable") {
            deployment.fleetMaxUnavailable = try value.positiveInt(max: 1000)
        }
        if let value = map.optional("publish") {
            deployment.publish = try value.bool()
            if deployment.publish, !registered {
                throw value.error("publish needs `membership` (membership.etcd): the instances are registered there")
            }
            if deployment.publish, process == nil {
                throw value.error("publish registers supervised instances: give the deployment a `process`")
            }
        }
        return deployment
    }

    /// The directory of a configuration file, for relative paths inside it.
    static func directory(of source: String) -> String {
        guard let slash = source.lastIndex(of: "/") else { return "." }
        let directory = String(source[..<slash])
        return directory.isEmpty ? "/" : directory
    }

    private static func hosts(_ node: ConfigNode) throws(ConfigError) -> [String] {
        let items = try node.list()
        guard !items.isEmpty else {
            throw node.error("expected at least one host name (leave hosts out to match any host)")
        }
        var hosts: [String] = []
        for item in items {
            let text = try item.string(expected: "a host name")
            guard let host = HostName.normalize(text) else {
                throw item.error("expected a host name such as shop.example.com, got \(item.shown)")
            }
            if hosts.contains(host) {
                throw item.error("host \(ConfigNode.quoted(host)) is listed twice")
            }
            hosts.append(host)
        }
        return hosts
    }

    private static func entryPoints(_ node: ConfigNode) throws(ConfigError) -> [EntryPointConfig] {
        let items = try node.list()
        guard !items.isEmpty else {
            throw node.error("expected at least one entry point (leave entry_points out for a single \"default\")")
        }
        var result: [EntryPointConfig] = []
        for item in items {
            let map = try item.mapping(known: ["name", "path_prefix", "methods", "max_requests"])
            let nameNode = try map.required("name")
            let name = try Self.name(nameNode)
            if result.contains(where: { $0.name == name }) {
                throw nameNode.error("duplicate entry point name \(ConfigNode.quoted(name))")
            }
            let pathPrefix = try Self.pathPrefix(map.required("path_prefix"))
            var methods: [String]?
            if let methodsNode = map.optional("methods") {
                methods = try Self.methods(methodsNode)
            }
            let maxRequests = try map.optional("max_requests")?.positiveInt(max: ConfigBounds.maxRequests)
            let entryPoint = EntryPointConfig(name: name, pathPrefix: pathPrefix, methods: methods, maxRequests: maxRequests)
            if let other = result.first(where: { Self.indistinguishable(entryPoint, $0) }) {
                throw item.error(
                    "entry point \(ConfigNode.quoted(name)) cannot be told apart from \(ConfigNode.quoted(other.name)): "
                        + "same path_prefix and overlapping methods"
                )
            }
            result.append(entryPoint)
        }
        return result
    }

    private static func methods(_ node: ConfigNode) throws(ConfigError) -> [String] {
        let items = try node.list()
        guard !items.isEmpty else {
            throw node.error("expected at least one method (leave methods out to allow any)")
        }
        var methods: [String] = []
        for item in items {
            let method = try item.string(expected: "an HTTP method").uppercased()
            guard !method.isEmpty, method.unicodeScalars.allSatisfy(Self.isTokenCharacter) else {
                throw item.error("expected an HTTP method such as GET or POST, got \(item.shown)")
            }
            if methods.contains(method) {
                throw item.error("method \(method) is listed twice")
            }
            methods.append(method)
        }
        return methods
    }

    // MARK: Values

    private static func name(_ node: ConfigNode) throws(ConfigError) -> String {
        let name = try node.string(expected: "a name")
        let allowed = name.unicodeScalars.allSatisfy { scalar in
            scalar.isASCII
                && (("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
                    || scalar == "_" || scalar == "." || scalar == "-")
        }
        guard !name.isEmpty, allowed else {
            throw node.error("names may use only letters, digits, '_', '.' and '-', got \(node.shown)")
        }
        return name
    }

    private static func pathPrefix(_ node: ConfigNode) throws(ConfigError) -> String {
        let prefix = try node.string(expected: "a path prefix")
        guard prefix.hasPrefix("/") else {
            throw node.error("a path prefix must start with \"/\", got \(node.shown)")
        }
        guard !prefix.contains(where: { $0.isWhitespace || $0 == "?" || $0 == "#" }) else {
            throw node.error("a path prefix is a path only (no spaces, query or fragment), got \(node.shown)")
        }
        return prefix
    }

    /// RFC 9110 `tchar`: what a method name may be made of.
    private static func isTokenCharacter(_ scalar: Unicode.Scalar) -> Bool {
        guard scalar.isASCII else { return false }
        if ("A"..."Z").contains(scalar) || ("a"..."z").contains(scalar) || ("0"..."9").contains(scalar) { return true }
        return "!#$%&'*+-.^_`|~".unicodeScalars.contains(scalar)
    }

    /// Two deployments that share a path prefix and a host (or both match any host) would
    /// compete for the same requests with nothing to choose between them. A deployment with
    /// hosts and one without are fine: the one naming the host is the more specific.
    private static func indistinguishable(_ a: DeploymentConfig, _ b: DeploymentConfig) -> Bool {
        guard a.pathPrefix == b.pathPrefix else { return false }
        switch (a.hosts, b.hosts) {
        case (nil, nil): return true
        case (let x?, let y?): return !Set(x).isDisjoint(with: y)
        default: return false
        }
    }

    /// Same idea inside a deployment: same prefix, and a method both would accept.
    private static func indistinguishable(_ a: EntryPointConfig, _ b: EntryPointConfig) -> Bool {
        guard a.pathPrefix == b.pathPrefix else { return false }
        switch (a.methods, b.methods) {
        case (nil, nil): return true
        case (let x?, let y?): return !Set(x).isDisjoint(with: y)
        default: return false
        }
    }

    // MARK: Errors from outside the tree

    private static func syntaxError(_ error: YamlError, source: String) -> ConfigError {
        func located(_ mark: Mark, _ text: String) -> ConfigError {
            ConfigError(source: source, line: mark.line, column: mark.column, message: "invalid YAML: \(text)")
        }
        switch error {
        case .scanner(let context, let problem, let mark, _),
            .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            guard let context, !context.text.isEmpty else { return located(mark, problem) }
            return located(mark, "\(problem) (\(context.text) at \(context.mark))")
        case .duplicatedKeysInMapping(let duplicates, let context):
            let keys = duplicates.map(ConfigNode.quoted).joined(separator: ", ")
            return ConfigError(
                source: source,
                line: context.mark.line,
                column: context.mark.column,
                message: "duplicate key \(keys) in the same mapping"
            )
        case .reader(let problem, _, _, _):
            return ConfigError(source: source, message: "cannot read YAML: \(problem)")
        default:
            return ConfigError(source: source, message: "invalid YAML: \(error)")
        }
    }

    /// The whole file as UTF-8, with the system's reason when it cannot be read.
    private static func readFile(_ path: String) throws(ConfigError) -> String {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw ConfigError(source: path, message: "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else {
                throw ConfigError(source: path, message: "cannot read: \(String(cString: strerror(errno)))")
            }
            if count == 0 { break }
            bytes.append(contentsOf: buffer[0..<count])
            guard bytes.count <= 16 * 1024 * 1024 else {
                throw ConfigError(source: path, message: "larger than 16 MiB; is this the configuration file?")
            }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ConfigError(source: path, message: "not valid UTF-8 text")
        }
        return text
    }
}

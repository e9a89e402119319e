import Supervisor

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The `process:` section of a deployment: the instances the gateway runs itself.
enum ProcessConfigParser {
    static let keys = [
        "command", "cwd", "env", "instances", "ports", "stop_signal", "stop_timeout", "drain_timeout", "health",
        "ready_timeout", "respawn", "max_unavailable", "log_file", "log_max_bytes", "log_keep",
    ]

    /// The smallest `log_max_bytes`: a rotation per line would be no log at all.
    static let minLogBytes = 4096
    /// The largest `log_keep`.
    static let maxLogKeep = 1000

    /// - Parameter baseDirectory: a relative `cwd` is taken relative to the configuration
    ///   file's directory (what a config checked in beside its apps means), not to wherever the
    ///   gateway happens to be started.
    static func parse(_ node: ConfigNode, baseDirectory: String) throws(ConfigError) -> ProcessSpec {
        let map = try node.mapping(known: keys)
        let commandNode = try map.required("command")
        guard case .sequence = commandNode.node else {
            throw commandNode.error(
                "expected the command as a list of arguments, such as [\"python3\", \"app.py\"], got \(commandNode.shown)")
        }
        var command: [String] = []
        for item in try commandNode.list() {
            command.append(try item.string(expected: "an argument"))
        }
        guard let program = command.first, !program.isEmpty else {
            throw commandNode.error("expected at least the program to run")
        }

        var workingDirectory: String?
        if let cwdNode = map.optional("cwd") {
            let cwd = try cwdNode.string(expected: "a directory")
            workingDirectory = cwd.hasPrefix("/") ? cwd : Self.join(baseDirectory, cwd)
            // One named after $PORT or $GATEWAY_INSTANCE exists (or not) only per instance: the
            // spawn checks it then, and names it.
            var info = stat()
            guard CommandExpansion.expandsAnything(in: workingDirectory!)
                || (stat(workingDirectory!, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR)
            else {
                throw cwdNode.error("no such directory: \(workingDirectory!)")
            }
        }

        var environment: [String: String] = [:]
        if let envNode = map.optional("env") {
            guard case .mapping(let pairs) = envNode.node else {
                throw envNode.error("expected a mapping of variable names to values, got \(envNode.shown)")
            }
            for (keyNode, valueNode) in pairs {
                let key = try ConfigNode(node: keyNode, keyPath: envNode.keyPath, source: envNode.source).string(expected: "a variable name")
                let value = ConfigNode(node: valueNode, keyPath: "\(envNode.keyPath).\(key)", source: envNode.source)
                guard !key.isEmpty, !key.contains("="), !key.contains("\0") else {
                    throw value.error("invalid environment variable name \(ConfigNode.quoted(key))")
                }
                if key == "PORT" {
                    throw value.error("PORT is set by the gateway (one port of `ports` per instance)")
                }
                environment[key] = value.isNull ? "" : try value.string(expected: "a value")
            }
        }

        let instances = try map.optional("instances")?.positiveInt(max: ConfigBounds.instances) ?? 1
        let portsNode = try map.required("ports")
        let ports = try Self.portRange(portsNode)
        // A roll of a one-instance deployment runs the replacement beside the old instance.
        guard ports.count >= instances + 1 else {
            throw portsNode.error(
                "\(ports.count) port\(ports.count == 1 ? "" : "s") for \(instances) instance\(instances == 1 ? "" : "s"); "
                    + "give at least \(instances + 1) (one spare for a rolling restart)")
        }

        var spec = ProcessSpec(command: command, workingDirectory: workingDirectory, environment: environment, instances: instances, ports: ports)
        if let value = map.optional("stop_signal") { spec.stopSignal = try Self.signal(value) }
        if let value = map.optional("stop_timeout") { spec.stopTimeout = try value.duration(allowZero: true) }
        if let value = map.optional("drain_timeout") { spec.drainTimeout = try value.duration(allowZero: true) }
        if let value = map.optional("ready_timeout") { spec.readyTimeout = try value.duration(allowZero: false) }
        if let value = map.optional("max_unavailable") { spec.maxUnavailable = try value.positiveInt(max: ConfigBounds.instances) }
        if let value = map.optional("health") { spec.health = try Self.health(value) }
        if let value = map.optional("respawn") { spec.respawn = try Self.respawn(value) }
        spec.logFile = try Self.logFile(map, baseDirectory: baseDirectory)
        return spec
    }

    /// `log_file` (relative to the configuration file's directory), with `log_max_bytes` and
    /// `log_keep`, which mean nothing without it.
    private static func logFile(_ map: ConfigMapping, baseDirectory: String) throws(ConfigError) -> LogFileSpec? {
        guard let pathNode = map.optional("log_file") else {
            for key in ["log_max_bytes", "log_keep"] {
                if let node = map.optional(key) { throw node.error("\(key) needs a log_file") }
            }
            return nil
        }
        let written = try pathNode.string(expected: "a file path")
        guard !written.isEmpty, !written.hasSuffix("/") else { throw pathNode.error("expected a file path, got \(pathNode.shown)") }
        let path = written.hasPrefix("/") ? written : Self.join(baseDirectory, written)
        // The directory must exist (the gateway creates files, not directories), unless it is
        // named after the instance.
        let directory = String(path[..<path.lastIndex(of: "/")!])
        var info = stat()
        guard CommandExpansion.expandsAnything(in: directory) || directory.isEmpty
            || (stat(directory, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR)
        else {
            throw pathNode.error("no such directory for the log file: \(directory)")
        }
        var spec = LogFileSpec(path: path)
        if let node = map.optional("log_max_bytes") {
            spec.maxBytes = try node.positiveInt(max: Int(Int32.max))
            guard spec.maxBytes >= minLogBytes else {
                throw node.error("expected at least \(minLogBytes) bytes, got \(spec.maxBytes)")
            }
        }
        if let node = map.optional("log_keep") { spec.keep = try node.nonNegativeInt(max: maxLogKeep) }
        return spec
    }

    private static func health(_ node: ConfigNode) throws(ConfigError) -> HealthCheckSpec {
        let map = try node.mapping(known: ["http", "tcp", "interval", "timeout", "failures"])
        var check = HealthCheckSpec()
        switch (map.optional("http"), map.optional("tcp")) {
        case (let http?, nil):
            let path = try http.string(expected: "a path such as /health")
            guard path.hasPrefix("/"), !path.contains(where: { $0.isWhitespace }) else {
                throw http.error("expected a path such as /health, got \(http.shown)")
            }
            check.kind = .http(path: path)
        case (nil, let tcp?):
            guard try tcp.string(expected: "true") == "true" else {
                throw tcp.error("write `tcp: true` for a connect check, or use `http: /path`")
            }
            check.kind = .tcp
        case (nil, nil):
            throw node.error("give `http: /path` (a GET that must answer 2xx or 3xx) or `tcp: true` (a connect)")
        case (_?, _?):
            throw node.error("give `http` or `tcp`, not both")
        }
        if let value = map.optional("interval") { check.interval = try value.duration(allowZero: false) }
        if let value = map.optional("timeout") { check.timeout = try value.duration(allowZero: false) }
        if let value = map.optional("failures") { check.failures = try value.positiveInt(max: ConfigBounds.attempts) }
        return check
    }

    private static func respawn(_ node: ConfigNode) throws(ConfigError) -> RespawnPolicy {
        let map = try node.mapping(known: ["delays", "reset_after", "max_restarts"])
        var policy = RespawnPolicy()
        if let delaysNode = map.optional("delays") {
            var delays: [Duration] = []
            // No zero delay: a crash loop must never spin.
            for item in try delaysNode.list() { delays.append(try item.duration(allowZero: false)) }
            guard !delays.isEmpty else { throw delaysNode.error("expected at least one delay") }
            policy.delays = delays
        }
        if let value = map.optional("reset_after") { policy.resetAfter = try value.duration(allowZero: false) }
        if let value = map.optional("max_restarts") { policy.maxRestarts = try value.positiveInt(max: ConfigBounds.attempts) }
        return policy
    }

    /// `9100-9199` or a single port.
    private static func portRange(_ node: ConfigNode) throws(ConfigError) -> ClosedRange<Int> {
        let text = try node.string(expected: "a port range such as 9100-9199")
        let parts = text.split(separator: "-", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: " ") }
        let numbers = parts.compactMap { Int($0) }
        guard numbers.count == parts.count, (1...2).contains(numbers.count),
            numbers.allSatisfy({ (1...65535).contains($0) })
        else {
            throw node.error("expected a port range such as 9100-9199 (ports 1-65535), got \(node.shown)")
        }
        guard numbers[0] <= numbers.last! else {
            throw node.error("the range is empty: \(numbers[0]) is above \(numbers.last!)")
        }
        return numbers[0]...(numbers.last!)
    }

    static let signalNames: [String: Int32] = [
        "HUP": SIGHUP, "INT": SIGINT, "QUIT": SIGQUIT, "KILL": SIGKILL, "USR1": SIGUSR1, "USR2": SIGUSR2,
        "TERM": SIGTERM, "WINCH": SIGWINCH,
    ]

    private static func signal(_ node: ConfigNode) throws(ConfigError) -> Int32 {
        let text = try node.string(expected: "a signal name").uppercased()
        let name = text.hasPrefix("SIG") ? String(text.dropFirst(3)) : text
        if let signal = signalNames[name] { return signal }
        throw node.error("expected a signal name (\(signalNames.keys.sorted().joined(separator: ", "))), got \(node.shown)")
    }

    static func join(_ base: String, _ relative: String) -> String {
        var path = relative
        while path.hasPrefix("./") { path.removeFirst(2) }
        if path == "." || path.isEmpty { return base }
        return base.hasSuffix("/") ? base + path : base + "/" + path
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> String {
        String(self.drop { set.contains($0) }.reversed().drop { set.contains($0) }.reversed())
    }
}

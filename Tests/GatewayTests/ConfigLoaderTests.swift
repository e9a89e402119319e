import Foundation
@testable import Gateway
import ProxyRules
import Testing

@Suite struct ConfigLoaderTests {
    /// The product's reference configuration, verbatim.
    static let reference = """
        listen: 127.0.0.1:8080
        admin:
          listen: 127.0.0.1:9901
        limits:
          max_requests: 1000          # global in-flight limit; absent = unlimited
        shutdown_timeout: 30s
        deployments:
          - name: shop
            hosts: [shop.local]       # optional; absent = any host
            path_prefix: /
            max_requests: 200         # optional
            entry_points:             # optional; absent = one entry point named "default"
              - name: api
                path_prefix: /api/
              - name: checkout
                path_prefix: /checkout
                methods: [POST]
                max_requests: 20
              - name: default
                path_prefix: /
            backends:
              - 127.0.0.1:9001
              - 127.0.0.1:9002
        """

    static let minimal = """
        listen: 0.0.0.0:8080
        deployments:
          - name: app
            backends: [127.0.0.1:9001]
        """

    func parse(_ yaml: String) throws(ConfigError) -> GatewayConfig {
        try ConfigLoader.parse(yaml: yaml, source: "gateway.yaml")
    }

    /// The error `yaml` is rejected with; records an issue when it is accepted.
    func error(_ yaml: String, sourceLocation: SourceLocation = #_sourceLocation) -> ConfigError? {
        do {
            let config = try self.parse(yaml)
            Issue.record("accepted: \(config)", sourceLocation: sourceLocation)
            return nil
        } catch {
            return error
        }
    }

    // MARK: Accepted

    @Test func referenceConfig() throws {
        let config = try self.parse(Self.reference)
        let expected = GatewayConfig(
            listeners: [.cleartext(HostPort(host: "127.0.0.1", port: 8080))],
            admin: AdminConfig(listen: HostPort(host: "127.0.0.1", port: 9901)),
            limits: LimitsConfig(maxRequests: 1000, maxHeaderBytes: 65536, maxBodyBytes: nil),
            shutdownTimeout: .seconds(30),
            threads: nil,
            timeouts: GatewayConfig.defaultTimeouts,
            deployments: [
                DeploymentConfig(
                    name: "shop",
                    hosts: ["shop.local"],
                    pathPrefix: "/",
                    maxRequests: 200,
                    entryPoints: [
                        EntryPointConfig(name: "api", pathPrefix: "/api/", methods: nil, maxRequests: nil),
                        EntryPointConfig(name: "checkout", pathPrefix: "/checkout", methods: ["POST"], maxRequests: 20),
                        EntryPointConfig(name: "default", pathPrefix: "/", methods: nil, maxRequests: nil),
                    ],
                    backends: [HostPort(host: "127.0.0.1", port: 9001), HostPort(host: "127.0.0.1", port: 9002)]
                )
            ]
        )
        #expect(config == expected)
    }

    @Test func defaults() throws {
        let config = try self.parse(Self.minimal)
        #expect(config.admin.listen == HostPort(host: "127.0.0.1", port: 9901))
        #expect(config.limits == LimitsConfig(maxRequests: nil, maxHeaderBytes: 65536, maxBodyBytes: nil))
        #expect(config.shutdownTimeout == .seconds(30))
        #expect(config.threads == nil)
        #expect(config.timeouts == GatewayConfig.defaultTimeouts)
        let deployment = try #require(config.deployments.first)
        #expect(deployment.hosts == nil)
        #expect(deployment.pathPrefix == "/")
        #expect(deployment.maxRequests == nil)
        #expect(deployment.entryPoints == [EntryPointConfig(name: "default", pathPrefix: "/", methods: nil, maxRequests: nil)])
    }

    @Test func everyOption() throws {
        let config = try self.parse(
            """
            listen: "[::1]:8443"
            admin: {listen: localhost:9000}
            limits: {max_requests: 1_000, max_header_bytes: 8192, max_body_bytes: 10485760}
            shutdown_timeout: 0
            threads: 4
            timeouts:
              connect: 250ms
              request_header: 10s
              idle: 2m
              backend_response: 1.5s
              pre_suspend: 0s
              request_body: 5s
              tunnel_idle: 10m
              park_idle: 250ms
            deployments:
              - name: api.v2-blue_1
                hosts: [API.Example.COM:8080, "[::1]:80", 10.0.0.1]
                path_prefix: /v2/
                entry_points:
                  - {name: read, path_prefix: /v2/, methods: [get, head]}
                  - {name: write, path_prefix: /v2/, methods: [post, PUT, patch]}
                backends: ["[::1]:9001", localhost:9002]
              - name: other
                path_prefix: /v2/
                backends: [127.0.0.1:9003]
            """
        )
        #expect(config.listen == HostPort(host: "::1", port: 8443))
        #expect(config.listen.description == "[::1]:8443")
        #expect(config.admin.listen == HostPort(host: "localhost", port: 9000))
        #expect(config.limits == LimitsConfig(maxRequests: 1000, maxHeaderBytes: 8192, maxBodyBytes: 10_485_760))
        #expect(config.shutdownTimeout == .zero)
        #expect(config.threads == 4)
        #expect(
            config.timeouts
                == TimeoutsConfig(
                    connect: .milliseconds(250),
                    requestHeader: .seconds(10),
                    idle: .seconds(120),
                    backendResponse: .milliseconds(1500),
                    preSuspend: .zero,
                    requestBody: .seconds(5),
                    tunnelIdle: .seconds(600),
                    parkIdle: .milliseconds(250)
                )
        )
        let api = config.deployments[0]
        #expect(api.name == "api.v2-blue_1")
        #expect(api.hosts == ["api.example.com", "::1", "10.0.0.1"])
        #expect(api.entryPoints.map(\.methods) == [["GET", "HEAD"], ["POST", "PUT", "PATCH"]])
        #expect(api.backends == [HostPort(host: "::1", port: 9001), HostPort(host: "localhost", port: 9002)])
        // Same prefix, but one names hosts and the other does not: the host-specific one wins.
        #expect(config.deployments[1].hosts == nil)
    }

    @Test func adminConnectionLimits() throws {
        let defaults = try self.parse(Self.minimal)
        #expect(defaults.admin.idleTimeout == .seconds(60))
        #expect(defaults.admin.requestTimeout == .seconds(10))
        #expect(defaults.admin.maxConnections == 64)

        let set = try self.parse(Self.minimal + "\nadmin: {idle_timeout: 5s, request_timeout: 2s, max_connections: 8}\n")
        #expect(set.admin == AdminConfig(
            listen: HostPort(host: "127.0.0.1", port: 9901), idleTimeout: .seconds(5), requestTimeout: .seconds(2), maxConnections: 8))

        let cases: [(String, String, String)] = [
            ("{idle_timeout: 0s}", "admin.idle_timeout", "must be greater than zero, got \"0s\""),
            ("{request_timeout: 9000h}", "admin.request_timeout", "must be at most 8760h (365 days), got \"9000h\""),
            ("{max_connections: 0}", "admin.max_connections", "expected a positive integer, got \"0\""),
            ("{max_connections: 100000}", "admin.max_connections", "must be at most 10000, got \"100000\""),
            ("{max_conections: 1}", "admin.max_conections", "unknown key \"max_conections\"; did you mean \"max_connections\"?"),
        ]
        for (admin, keyPath, message) in cases {
            let error = try #require(self.error(Self.minimal + "\nadmin: \(admin)\n"))
            #expect(error.keyPath == keyPath, "\(admin)")
            #expect(error.message == message, "\(admin)")
        }
    }

    @Test func explicitNullMeansAbsent() throws {
        let config = try self.parse(
            """
            listen: 127.0.0.1:8080
            limits:
              max_requests: ~
            threads: null
            deployments:
              - name: app
                hosts:
                entry_points:
                backends: [127.0.0.1:9001]
            """
        )
        #expect(config.limits.maxRequests == nil)
        #expect(config.threads == nil)
        #expect(config.deployments[0].hosts == nil)
        #expect(config.deployments[0].entryPoints.map(\.name) == ["default"])
    }

    // MARK: Located errors

    @Test func errorsCarryFileLineColumnAndKeyPath() throws {
        let yaml = Self.reference.replacingOccurrences(of: "max_requests: 20\n", with: "max_requests: abc\n")
        let error = try #require(self.error(yaml))
        #expect(error.source == "gateway.yaml")
        #expect(error.line == 18)
        #expect(error.column == 23)
        #expect(error.keyPath == "deployments[0].entry_points[1].max_requests")
        #expect(
            error.description
                == "gateway.yaml:18:23: deployments[0].entry_points[1].max_requests: expected a positive integer, got \"abc\""
        )
    }

    @Test func unknownKeysAreNamedWithASuggestion() throws {
        let typo = try #require(
            self.error(
                """
                listen: 127.0.0.1:8080
                deployments:
                  - name: app
                    bakends: [127.0.0.1:9001]
                """
            )
        )
        #expect(typo.description == "gateway.yaml:4:5: deployments[0].bakends: unknown key \"bakends\"; did you mean \"backends\"?")

        let dashed = try #require(self.error("listen: 127.0.0.1:8080\nshutdown-timeout: 5s\n"))
        #expect(dashed.message.contains("did you mean \"shutdown_timeout\"?"))
        #expect(dashed.keyPath == "shutdown-timeout")

        let nested = try #require(self.error("listen: 127.0.0.1:8080\ntimeouts:\n  idel: 5s\n"))
        #expect(nested.keyPath == "timeouts.idel")
        #expect(nested.message.contains("did you mean \"idle\"?"))

        let unrelated = try #require(self.error("listen: 127.0.0.1:8080\nfrobnicate: yes\n"))
        #expect(unrelated.message.hasPrefix("unknown key \"frobnicate\" (known keys: listen, listeners, admin,"))
    }

    @Test func wrongTypes() throws {
        let cases: [(String, String, String)] = [
            ("listen: [127.0.0.1:8080]", "listen", "expected an address host:port, got a list"),
            ("listen: 127.0.0.1:8080\nadmin: [x]", "admin", "expected a mapping, got a list"),
            ("listen: 127.0.0.1:8080\ndeployments: {name: x}", "deployments", "expected a list, got a mapping"),
            ("listen: 127.0.0.1:8080\ndeployments: [just-a-name]", "deployments[0]", "expected a mapping, got \"just-a-name\""),
            ("listen: 127.0.0.1:8080\nlimits: 5", "limits", "expected a mapping, got \"5\""),
            ("listen: 127.0.0.1:8080\nthreads: {a: 1}", "threads", "expected a positive integer, got a mapping"),
        ]
        for (yaml, keyPath, message) in cases {
            let error = try #require(self.error(yaml))
            #expect(error.keyPath == keyPath, "\(yaml)")
            #expect(error.message == message, "\(yaml)")
        }
    }

    @Test func emptyAndNonMappingDocuments() throws {
        for yaml in ["", "   \n", "# only a comment\n", "~"] {
            let error = try #require(self.error(yaml))
            #expect(error.message == "the configuration is empty", "\(yaml.debugDescription)")
        }
        #expect(self.error("- a\n- b\n")?.message == "expected a mapping of settings at the top level, got a list")
        #expect(self.error("hello")?.message == "expected a mapping of settings at the top level, got \"hello\"")
    }

    @Test func yamlSyntaxErrorsKeepYamsPosition() throws {
        let unclosed = try #require(self.error("listen: 127.0.0.1:8080\ndeployments: [a, b\nthreads: 2\n"))
        #expect(unclosed.line == 3)
        #expect(unclosed.message.hasPrefix("invalid YAML: "))
        #expect(unclosed.description.hasPrefix("gateway.yaml:3:"))

        let badIndent = try #require(self.error("listen: a:1\n  admin: x\n bad: [\n"))
        #expect(badIndent.line != nil)
        #expect(badIndent.message.hasPrefix("invalid YAML: "))

        let duplicate = try #require(self.error("listen: 127.0.0.1:1\nthreads: 2\nlisten: 127.0.0.1:2\n"))
        #expect(duplicate.message == "duplicate key \"listen\" in the same mapping")
        #expect(duplicate.line != nil)

        let twoDocuments = try #require(self.error("listen: 127.0.0.1:1\n---\nlisten: 127.0.0.1:2\n"))
        #expect(twoDocuments.message.contains("single document"))
        #expect(twoDocuments.line == 2)
    }

    @Test func missingRequiredKeys() throws {
        #expect(self.error("threads: 2")?.description == "gateway.yaml:1:1: give `listen` (one HTTP/1.1 address) or `listeners`")
        #expect(self.error("listen: 127.0.0.1:8080")?.message == "missing required key \"deployments\"")
        let noBackends = try #require(self.error("listen: 127.0.0.1:8080\ndeployments:\n  - name: app\n"))
        #expect(noBackends.keyPath == "deployments[0]")
        #expect(noBackends.message == "give the deployment's `backends` (addresses) or a `process` the gateway runs")
        #expect(noBackends.line == 3)
        let noName = try #require(self.error("listen: 127.0.0.1:8080\ndeployments:\n  - backends: [127.0.0.1:1]\n"))
        #expect(noName.message == "missing required key \"name\"")
        let noPrefix = try #require(
            self.error(
                """
                listen: 127.0.0.1:8080
                deployments:
                  - name: app
                    entry_points: [{name: api}]
                    backends: [127.0.0.1:9001]
                """
            )
        )
        #expect(noPrefix.keyPath == "deployments[0].entry_points[0]")
        #expect(noPrefix.message == "missing required key \"path_prefix\"")
    }

    @Test func emptyListsAreRejected() throws {
        let base = "listen: 127.0.0.1:8080\n"
        #expect(self.error(base + "deployments: []")?.message == "expected at least one deployment")
        let deployment = base + "deployments:\n  - name: app\n"
        #expect(self.error(deployment + "    backends: []")?.keyPath == "deployments[0].backends")
        #expect(
            self.error(deployment + "    hosts: []\n    backends: [127.0.0.1:1]")?.message
                == "expected at least one host name (leave hosts out to match any host)"
        )
        #expect(self.error(deployment + "    entry_points: []\n    backends: [127.0.0.1:1]")?.keyPath == "deployments[0].entry_points")
    }

    // MARK: Values

    @Test(arguments: [
        ("500ms", Duration.milliseconds(500)),
        ("30s", .seconds(30)),
        ("1.5s", .milliseconds(1500)),
        ("0.1s", .milliseconds(100)),
        ("2m", .seconds(120)),
        ("1h", .seconds(3600)),
        ("10", .seconds(10)),
        ("2.5", .milliseconds(2500)),
        ("0.25ms", .microseconds(250)),
        ("0", .zero),
    ])
    func durations(text: String, expected: Duration) throws {
        #expect(DurationParser.parse(text) == .success(expected))
        let config = try self.parse(Self.minimal + "\nshutdown_timeout: \(text)\n")
        #expect(config.shutdownTimeout == expected)
    }

    @Test(arguments: ["-1s", "-5", "abc", "1.5.2s", "10d", "10 s", "s", "ms", ".5s", "5.s", "1e3", "99999999999999h"])
    func badDurations(text: String) throws {
        let error = try #require(self.error(Self.minimal + "\nshutdown_timeout: \"\(text)\"\n"))
        #expect(error.keyPath == "shutdown_timeout")
        #expect(error.line == 5)
        #expect(error.column == 19)
        if text.hasPrefix("-") {
            #expect(error.message == "must not be negative, got \"\(text)\"")
        }
    }

    @Test func zeroTimeoutsWhereWaitingIsRequired() throws {
        let error = try #require(self.error(Self.minimal + "\ntimeouts: {connect: 0s}\n"))
        #expect(error.keyPath == "timeouts.connect")
        #expect(error.message == "must be greater than zero, got \"0s\"")
    }

    @Test(arguments: [
        ("127.0.0.1:8080", HostPort(host: "127.0.0.1", port: 8080)),
        ("[::1]:1", HostPort(host: "::1", port: 1)),
        ("[2001:DB8::1]:65535", HostPort(host: "2001:db8::1", port: 65535)),
        ("localhost:9000", HostPort(host: "localhost", port: 9000)),
        ("Backend-1.internal:80", HostPort(host: "backend-1.internal", port: 80)),
    ])
    func addresses(text: String, expected: HostPort) {
        #expect(HostPort.parse(text) == .success(expected))
    }

    @Test(arguments: [
        "8080", "localhost", "host:65536", "host:", ":8080", "::1:80", "[::1]", "[::1]80", "[zz]:80",
        "a b:80", "host:80x", "host:+80", "host..x:80",
    ])
    func badAddresses(text: String) throws {
        guard case .failure = HostPort.parse(text) else {
            Issue.record("\(text) was accepted")
            return
        }
        let error = try #require(self.error("listen: \"\(text)\"\ndeployments: []\n"))
        #expect(error.keyPath == "listen")
    }

    @Test func portZeroOnlyForListeners() throws {
        let config = try ConfigLoader.parse(
            yaml: "listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\ndeployments:\n  - name: a\n    backends: [127.0.0.1:9]\n",
            source: "t.yaml"
        )
        #expect(config.listen.port == 0)
        #expect(config.admin.listen.port == 0)
        let error = try #require(self.error("listen: 127.0.0.1:8080\ndeployments:\n  - name: a\n    backends: [127.0.0.1:0]\n"))
        #expect(error.keyPath == "deployments[0].backends[0]")
        #expect(error.message.contains("1 to 65535"))
    }

    @Test func positiveIntegers() throws {
        for bad in ["0", "-3", "1.5", "ten", "true"] {
            let error = try #require(self.error(Self.minimal + "\nthreads: \(bad)\n"))
            #expect(error.message == "expected a positive integer, got \"\(bad)\"")
        }
    }

    @Test func failoverAndTunnelKeysPerDeployment() throws {
        let config = try self.parse(
            """
            listen: 127.0.0.1:8080
            upgrade_protocols: [websocket, My-Proto]
            deployments:
              - name: app
                retries: 0
                eject_after: 5
                eject_for: 2s
                tunnel_grace: 0s
                backends: [127.0.0.1:9001]
            """)
        let app = config.deployments[0]
        #expect(app.retries == 0)
        #expect(app.ejectAfter == 5)
        #expect(app.ejectFor == .seconds(2))
        #expect(app.tunnelGrace == .zero)
        #expect(config.upgradeProtocols == ["websocket", "my-proto"])
        #expect(try self.parse(Self.minimal).upgradeProtocols == ["websocket"])
        #expect(try self.parse(Self.minimal).deployments[0].retries == 2)

        let tooMany = try #require(self.error(Self.minimal.replacingOccurrences(of: "  - name: app\n", with: "  - name: app\n    retries: 11\n")))
        #expect(tooMany.message.contains("must be at most 10"), "\(tooMany)")
        let h2c = try #require(self.error(Self.minimal + "\nupgrade_protocols: [h2c]\n"))
        #expect(h2c.message.contains("h2c cannot be tunnelled"), "\(h2c)")
        let bad = try #require(self.error(Self.minimal + "\nupgrade_protocols: [\"web socket\"]\n"))
        #expect(bad.message.contains("expected a protocol token"), "\(bad)")
    }

    @Test func hostsAreNormalised() {
        #expect(HostName.normalize("Shop.Local") == "shop.local")
        #expect(HostName.normalize("shop.local:8080") == "shop.local")
        #expect(HostName.normalize("[::1]:8080") == "::1")
        #expect(HostName.normalize("[::1]") == "::1")
        for bad in ["", "*.shop.local", "shop local", "shop.local:", "shop.local:80:80", "a..b", "[::1", "[::1]x"] {
            #expect(HostName.normalize(bad) == nil, "\(bad)")
        }
    }

    @Test func closestKey() {
        let known = ["listen", "admin", "limits", "shutdown_timeout", "threads", "timeouts", "deployments"]
        #expect(ClosestKey.find("lsiten", among: known) == "listen")
        #expect(ClosestKey.find("Listen", among: known) == "listen")
        #expect(ClosestKey.find("deployment", among: known) == "deployments")
        #expect(ClosestKey.find("timeout", among: known) == "timeouts")
        #expect(ClosestKey.find("xyz", among: known) == nil)
        #expect(ClosestKey.editDistance(Array("kitten"), Array("sitting")) == 3)
        #expect(ClosestKey.editDistance(Array("idel"), Array("idle")) == 1)
    }

    // MARK: Cross-checks

    @Test func names() throws {
        let error = try #require(
            self.error("listen: 127.0.0.1:8080\ndeployments:\n  - name: shop!\n    backends: [127.0.0.1:1]\n")
        )
        #expect(error.keyPath == "deployments[0].name")
        #expect(error.message == "names may use only letters, digits, '_', '.' and '-', got \"shop!\"")
    }

    @Test func duplicateDeploymentNames() throws {
        let error = try #require(
            self.error(
                """
                listen: 127.0.0.1:8080
                deployments:
                  - {name: shop, path_prefix: /a/, backends: [127.0.0.1:1]}
                  - {name: shop, path_prefix: /b/, backends: [127.0.0.1:2]}
                """
            )
        )
        #expect(error.keyPath == "deployments[1].name")
        #expect(error.line == 4)
        #expect(error.message == "duplicate deployment name \"shop\" (also deployments[0])")
    }

    @Test func deploymentsThatCannotBeToldApart() throws {
        let sameEverything = try #require(
            self.error(
                """
                listen: 127.0.0.1:8080
                deployments:
                  - {name: a, backends: [127.0.0.1:1]}
                  - {name: b, path_prefix: /, backends: [127.0.0.1:2]}
                """
            )
        )
        #expect(sameEverything.keyPath == "deployments[1]")
        #expect(sameEverything.message.contains("\"b\" cannot be told apart from \"a\" (deployments[0])"))

        let sharedHost = try #require(
            self.error(
                """
                listen: 127.0.0.1:8080
                deployments:
                  - {name: a, hosts: [x.local, y.local], backends: [127.0.0.1:1]}
                  - {name: b, hosts: ["Y.LOCAL:8080"], backends: [127.0.0.1:2]}
                """
            )
        )
        #expect(sharedHost.keyPath == "deployments[1]")

        // Distinct hosts, distinct prefixes, or host-specific over any-host: all fine.
        let config = try self.parse(
            """
            listen: 127.0.0.1:8080
            deployments:
              - {name: a, hosts: [x.local], backends: [127.0.0.1:1]}
              - {name: b, hosts: [y.local], backends: [127.0.0.1:2]}
              - {name: c, backends: [127.0.0.1:3]}
              - {name: d, path_prefix: /d/, backends: [127.0.0.1:4]}
            """
        )
        #expect(config.deployments.count == 4)
    }

    @Test func entryPointChecks() throws {
        func deployment(_ entryPoints: String) -> String {
            "listen: 127.0.0.1:8080\ndeployments:\n  - name: app\n    backends: [127.0.0.1:1]\n    entry_points:\n"
                + entryPoints
        }
        let duplicateName = try #require(
            self.error(deployment("      - {name: a, path_prefix: /a}\n      - {name: a, path_prefix: /b}\n"))
        )
        #expect(duplicateName.keyPath == "deployments[0].entry_points[1].name")
        #expect(duplicateName.message == "duplicate entry point name \"a\"")

        let overlapping = try #require(
            self.error(
                deployment(
                    "      - {name: a, path_prefix: /x, methods: [GET, POST]}\n"
                        + "      - {name: b, path_prefix: /x, methods: [post]}\n"
                )
            )
        )
        #expect(overlapping.keyPath == "deployments[0].entry_points[1]")

        let noSlash = try #require(self.error(deployment("      - {name: a, path_prefix: api/}\n")))
        #expect(noSlash.keyPath == "deployments[0].entry_points[0].path_prefix")
        #expect(noSlash.message == "a path prefix must start with \"/\", got \"api/\"")

        let badMethod = try #require(self.error(deployment("      - {name: a, path_prefix: /, methods: [\"GE T\"]}\n")))
        #expect(badMethod.keyPath == "deployments[0].entry_points[0].methods[0]")

        let split = try self.parse(
            deployment(
                "      - {name: r, path_prefix: /x, methods: [GET]}\n      - {name: w, path_prefix: /x, methods: [POST]}\n"
            )
        )
        #expect(split.deployments[0].entryPoints.map(\.name) == ["r", "w"])
    }

    @Test func deploymentPathPrefixMustStartWithSlash() throws {
        let error = try #require(
            self.error("listen: 127.0.0.1:8080\ndeployments:\n  - {name: a, path_prefix: shop, backends: [127.0.0.1:1]}\n")
        )
        #expect(error.keyPath == "deployments[0].path_prefix")
    }

    @Test func duplicateBackendsAndAdminClash() throws {
        let twice = try #require(
            self.error("listen: 127.0.0.1:8080\ndeployments:\n  - {name: a, backends: [127.0.0.1:1, 127.0.0.1:1]}\n")
        )
        #expect(twice.keyPath == "deployments[0].backends[1]")
        #expect(twice.message == "backend 127.0.0.1:1 is listed twice")

        let clash = try #require(self.error("listen: 127.0.0.1:9901\n" + "deployments: [{name: a, backends: [127.0.0.1:1]}]\n"))
        #expect(clash.keyPath == "listen")
        #expect(clash.message.contains("admin API"))
    }
}

import Testing

@testable import Gateway

@Suite struct MembershipConfigTests {
    func parse(_ yaml: String) throws(ConfigError) -> GatewayConfig {
        try ConfigLoader.parse(yaml: yaml, source: "gateway.yaml")
    }

    func message(_ yaml: String, sourceLocation: SourceLocation = #_sourceLocation) -> String {
        do {
            let config = try parse(yaml)
            Issue.record("accepted: \(config)", sourceLocation: sourceLocation)
            return ""
        } catch {
            return error.message
        }
    }

    func config(_ membership: String, backends: String = "[]") -> String {
        """
        listen: 127.0.0.1:8080
        \(membership)
        deployments:
          - name: web
            backends: \(backends)
        """
    }

    @Test func etcdMembershipWithDefaultsAndAnEmptyDeployment() throws {
        let parsed = try parse(config("membership: {etcd: {endpoints: [127.0.0.1:2379, 'http://127.0.0.2:2379/']}}"))
        let membership = try #require(parsed.membership)
        #expect(membership.endpoints == [HostPort(host: "127.0.0.1", port: 2379), HostPort(host: "127.0.0.2", port: 2379)])
        #expect(membership.prefix == "/gateway/")
        #expect(membership.dialTimeout == .seconds(2))
        #expect(parsed.deployments[0].backends.isEmpty)

        let custom = try parse(config("membership: {etcd: {endpoints: [127.0.0.1:2379], prefix: /fleet/a/, dial_timeout: 500ms}}"))
        #expect(custom.membership?.prefix == "/fleet/a/")
        #expect(custom.membership?.dialTimeout == .milliseconds(500))
    }

    @Test func badMembershipSettingsAreNamed() {
        #expect(message(config("")).contains("an empty list only with `membership`"))
        #expect(message(config("membership: {etcd: {endpoints: []}}")).contains("at least one etcd endpoint"))
        #expect(message(config("membership: {etcd: {endpoints: ['https://127.0.0.1:2379']}}")).contains("TLS is not supported yet"))
        #expect(message(config("membership: {etcd: {endpoints: [127.0.0.1]}}")).contains("etcd client address"))
        #expect(message(config("membership: {etcd: {endpoints: [127.0.0.1:2379, 127.0.0.1:2379]}}")).contains("listed twice"))
        #expect(message(config("membership: {etcd: {endpoints: [127.0.0.1:2379], prefix: gateway}}")).contains("starts and ends with /"))
        #expect(message(config("membership: {etcd: {endpoints: [127.0.0.1:2379], dial_timeout: 0s}}")).contains("greater than zero"))
        #expect(message(config("membership: {etcd: {endpoint: [127.0.0.1:2379]}}")).contains("endpoint"))
        #expect(message(config("membership: {consul: {}}")).contains("consul"))
        #expect(message(config("membership: {gateway_id: 'a/b', etcd: {endpoints: [127.0.0.1:2379]}}")).contains("gateway id"))
    }

    @Test func publishNeedsMembershipAndAProcess() throws {
        let supervised = """
            listen: 127.0.0.1:8080
            %@
            deployments:
              - name: shop
                publish: true
                %@
            """
        func yaml(_ membership: String, _ backends: String) -> String {
            supervised.replacingOccurrences(of: "%@\ndeployments", with: membership + "\ndeployments")
                .replacingOccurrences(of: "    %@", with: "    " + backends)
        }
        let process = "process: {command: [app], ports: 9000-9010}"
        let parsed = try parse(yaml("membership: {gateway_id: host-a, etcd: {endpoints: [127.0.0.1:2379]}}", process))
        #expect(parsed.deployments[0].publish)
        #expect(parsed.membership?.gatewayID == "host-a")
        #expect(message(yaml("", process)).contains("publish needs `membership`"))
        #expect(message(yaml("membership: {etcd: {endpoints: [127.0.0.1:2379]}}", "backends: [127.0.0.1:9001]")).contains("give the deployment a `process`"))
    }
}

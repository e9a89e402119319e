@testable import Gateway
import Testing

/// `access_log` in the configuration: accepted forms and the errors for bad ones.
@Suite struct AccessLogConfigTests {
    static func yaml(_ accessLog: String) -> String {
        """
        listen: 127.0.0.1:8080
        \(accessLog)
        deployments:
          - name: app
            backends: [127.0.0.1:9001]
        """
    }

    static func parse(_ accessLog: String, source: String = "/etc/gateway/gateway.yaml") throws(ConfigError) -> GatewayConfig {
        try ConfigLoader.parse(yaml: yaml(accessLog), source: source)
    }

    static func error(_ accessLog: String) -> ConfigError? {
        do {
            let config = try parse(accessLog)
            Issue.record("accepted: \(config)")
            return nil
        } catch {
            return error
        }
    }

    @Test func absentMeansNoAccessLog() throws {
        #expect(try Self.parse("").accessLog == nil)
    }

    @Test func formatDefaultsToJSONAndRelativePathsFollowTheConfigFile() throws {
        #expect(try Self.parse("access_log: {path: /var/log/gateway/access.log}").accessLog
            == AccessLogConfig(path: "/var/log/gateway/access.log", format: .json))
        #expect(try Self.parse("access_log: {path: logs/access.log, format: combined}").accessLog
            == AccessLogConfig(path: "/etc/gateway/logs/access.log", format: .combined))
        let stdout = try #require(try Self.parse("access_log: {path: \"-\"}").accessLog)
        #expect(stdout.destination == .standardOutput)
    }

    @Test func badValuesNameTheirKey() throws {
        let format = try #require(Self.error("access_log: {path: a.log, format: xml}"))
        #expect(format.keyPath == "access_log.format")
        #expect(format.message.contains("expected json or combined"), "\(format)")

        let missing = try #require(Self.error("access_log: {format: json}"))
        #expect(missing.keyPath.hasPrefix("access_log"), "\(missing)")
        #expect(missing.description.contains("path"), "\(missing)")

        let empty = try #require(Self.error("access_log: {path: \"\"}"))
        #expect(empty.keyPath == "access_log.path")

        let unknown = try #require(Self.error("access_log: {path: a.log, fromat: json}"))
        #expect(unknown.keyPath == "access_log.fromat", "\(unknown)")

        let notAMapping = try #require(Self.error("access_log: access.log"))
        #expect(notAMapping.keyPath == "access_log", "\(notAMapping)")
    }
}

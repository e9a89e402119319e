import Foundation
import NIOCore
import Testing

@testable import Gateway

/// Numbers from a configuration file or an admin parameter are range-checked where they enter,
/// with an error that names the key or parameter; nothing converts them in a way that can trap.
@Suite struct InputRangeTests {
    static let minimal = """
        listen: 127.0.0.1:8080
        deployments:
          - name: app
            backends: [127.0.0.1:9001]

        """

    func error(_ yaml: String, sourceLocation: SourceLocation = #_sourceLocation) -> ConfigError? {
        do {
            let config = try ConfigLoader.parse(yaml: yaml, source: "gateway.yaml")
            Issue.record("accepted: \(config)", sourceLocation: sourceLocation)
            return nil
        } catch {
            return error
        }
    }

    // MARK: Configuration

    @Test func maxConcurrentStreamsBeyondHTTP2IsRejectedByName() throws {
        let error = try #require(self.error(Self.minimal + "http2: {max_concurrent_streams: 5000000000}\n"))
        #expect(error.keyPath == "http2.max_concurrent_streams")
        #expect(error.message == "must be at most 2147483647 (2^31-1), got \"5000000000\"")
        #expect(error.line == 5)
    }

    @Test(arguments: [
        // key, value, key path in the error, the maximum named in it
        ("threads", "5000000000", "threads", "1024"),
        ("threads", "99999999999999999999999", "threads", "1024"),
        ("limits", "{max_requests: 1_000_000_001}", "limits.max_requests", "1000000000"),
        ("limits", "{max_header_bytes: 1073741824}", "limits.max_header_bytes", "16777216"),
        ("limits", "{max_body_bytes: 99999999999999999999}", "limits.max_body_bytes", "9223372036854775807"),
    ])
    func countsAndSizesHaveAMaximum(key: String, value: String, keyPath: String, maximum: String) throws {
        let error = try #require(self.error(Self.minimal + "\(key): \(value)\n"))
        #expect(error.keyPath == keyPath)
        #expect(error.message.hasPrefix("must be at most \(maximum)"), "\(error)")
    }

    @Test func deploymentAndEntryPointLimitsHaveAMaximum() throws {
        let deployment = try #require(self.error(
            "listen: 127.0.0.1:8080\ndeployments:\n  - {name: a, max_requests: 9223372036854775807, backends: [127.0.0.1:1]}\n"))
        #expect(deployment.keyPath == "deployments[0].max_requests")
        #expect(deployment.message.hasPrefix("must be at most 1000000000"))
        let entryPoint = try #require(self.error(
            "listen: 127.0.0.1:8080\ndeployments:\n  - name: a\n    backends: [127.0.0.1:1]\n"
                + "    entry_points: [{name: e, path_prefix: /, max_requests: 4000000000}]\n"))
        #expect(entryPoint.keyPath == "deployments[0].entry_points[0].max_requests")
    }

    @Test(arguments: ["999999999999h", "8761h", "31536001", "525601m", "31536000001ms", "2562047h", "9223372036.854775807s"])
    func durationsAboveAYearAreRejected(text: String) throws {
        let error = try #require(self.error(Self.minimal + "timeouts: {backend_response: \"\(text)\"}\n"))
        #expect(error.keyPath == "timeouts.backend_response")
        #expect(error.message == "must be at most 8760h (365 days), got \"\(text)\"")
    }

    @Test func aYearIsTheLongestDuration() throws {
        let config = try ConfigLoader.parse(yaml: Self.minimal + "shutdown_timeout: 8760h\n", source: "gateway.yaml")
        #expect(config.shutdownTimeout == .seconds(365 * 24 * 3600))
        #expect(DurationParser.parse("1e300s") == .failure(ConfigValueProblem("expected a duration such as 500ms, 30s, 1.5s, 2m or 1h")))
    }

    @Test func processCountsAndDurationsHaveAMaximum() throws {
        func process(_ extra: String) -> String {
            "listen: 127.0.0.1:8080\ndeployments:\n  - name: a\n    process:\n      command: [app]\n      ports: 9100-9199\n"
                + extra.split(separator: "\n").map { "      \($0)\n" }.joined()
        }
        let cases: [(String, String, String)] = [
            // Int.max instances: `instances + 1` (the spare port of a roll) would overflow.
            ("instances: 9223372036854775807", "deployments[0].process.instances", "must be at most 65534"),
            ("max_unavailable: 9223372036854775807", "deployments[0].process.max_unavailable", "must be at most 65534"),
            ("health: {tcp: true, failures: 5000000000}", "deployments[0].process.health.failures", "must be at most 1000000"),
            ("respawn: {max_restarts: 5000000000}", "deployments[0].process.respawn.max_restarts", "must be at most 1000000"),
            ("stop_timeout: 999999999999h", "deployments[0].process.stop_timeout", "must be at most 8760h"),
            ("respawn: {delays: [1s, 9000h]}", "deployments[0].process.respawn.delays[1]", "must be at most 8760h"),
            ("health: {tcp: true, interval: 2562047h}", "deployments[0].process.health.interval", "must be at most 8760h"),
        ]
        for (yaml, keyPath, message) in cases {
            let error = self.error(process(yaml))
            #expect(error?.keyPath == keyPath, "\(yaml)")
            #expect(error?.message.hasPrefix(message) == true, "\(yaml): \(String(describing: error))")
        }
    }

    // MARK: Conversions that must not trap

    @Test func timeAmountOfAHugeDurationSaturates() {
        // NIO's conversion, which the gateway uses (its own trapped): it clamps.
        #expect(TimeAmount(Duration.seconds(Int64.max)) == .nanoseconds(Int64.max))
        #expect(TimeAmount(Duration.milliseconds(1500)) == .milliseconds(1500))
    }

    @Test func http2SettingsOfExtremeValuesDoNotTrap() {
        var http2 = HTTP2Config()
        http2.maxConcurrentStreams = 5_000_000_000
        http2.initialWindowBytes = Int.max
        let settings = http2.session
        #expect(settings.maxConcurrentStreams == UInt32.max)
        #expect(settings.connectionWindowSize == UInt32.max)
    }

    @Test func cliFormatsOfHugeWireNumbersDoNotTrap() {
        #expect(AdminFormat.milliseconds(1e300) == "1e+300 ms")
        #expect(AdminFormat.milliseconds(-1e300) == "-1e+300 ms")
        #expect(AdminFormat.milliseconds(12.4) == "12 ms")
    }
}

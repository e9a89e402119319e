import Foundation
import Supervisor
import Testing

@testable import Gateway

/// `gateway logs` and its endpoint, without processes: the parameters, the merge of several
/// instances, and the `log_file` keys.
@Suite struct InstanceLogsTests {
    @Test func logParametersAndTheirErrors() throws {
        let plain = try AdminAPI.logQuery([:], instance: "shop#1").get()
        #expect(plain == OutputQuery(instance: "shop#1", lines: 100))
        let follow = try AdminAPI.logQuery(["lines": "1000", "after": "41", "wait": "2.5"], instance: "shop#1").get()
        #expect(follow == OutputQuery(instance: "shop#1", lines: 1000, after: 41, waitMilliseconds: 2500))
        let bad: [([String: String], String)] = [
            (["lines": "0"], "lines must be a number from 1 to 1000, got '0'"),
            (["lines": "1001"], "lines must be a number from 1 to 1000, got '1001'"),
            (["lines": "x"], "lines must be a number from 1 to 1000, got 'x'"),
            (["after": "-1"], "after must be a sequence number (0 or more), got '-1'"),
            (["after": "1", "wait": "61"], "wait must be a number of seconds from 0 to 60, got '61'"),
            (["wait": "1"], "wait needs after (the last sequence number already seen)"),
            (["tail": "5"], "unknown parameter 'tail'; expected one of after, lines, wait"),
        ]
        for (query, message) in bad {
            switch AdminAPI.logQuery(query, instance: "shop#1") {
            case .success(let parsed): Issue.record("\(query) parsed as \(parsed)")
            case .failure(let error): #expect(error.message == message)
            }
        }
    }

    static func page(_ instance: String, _ lines: [(Int, Double, String)], last: Int) -> AdminAnswer.Logs {
        AdminAnswer.Logs(
            instance: instance, lines: lines.map { .init(sequence: $0.0, time: $0.1, stream: "stdout", pid: 1, text: $0.2) },
            lastSequence: last, gap: false)
    }

    @Test func instancesAreMergedByTimeAndPrefixed() {
        let one = Self.page("shop#1", [(1, 10.0, "a"), (2, 12.0, "c")], last: 2)
        let two = Self.page("shop#2", [(7, 11.0, "b"), (8, 12.0, "d")], last: 8)
        #expect(InstanceLogLines.merged([one, two], prefixed: true) == ["[shop#1] a", "[shop#2] b", "[shop#1] c", "[shop#2] d"])
        #expect(InstanceLogLines.merged([one], prefixed: false) == ["a", "c"])
        #expect(InstanceLogLines.next(after: two) == 8)
    }

    @Test func theLogsAnswerDecodesAsTheCLIReadsIt() throws {
        let answer = LogsAnswer(
            instance: "shop#1",
            page: OutputPage(lines: [.init(sequence: 3, time: 1_700_000_000.1234, stream: .stderr, pid: 42, text: "boom")], lastSequence: 3, gap: true))
        let body = AdminResponse.json(200, answer).body
        let json = String(decoding: body, as: UTF8.self)
        #expect(json.contains(#""last_sequence" : 3"#))
        let decoded = try AdminJSON.decoder.decode(AdminAnswer.Logs.self, from: body)
        #expect(decoded == AdminAnswer.Logs(
            instance: "shop#1", lines: [.init(sequence: 3, time: 1_700_000_000.123, stream: "stderr", pid: 42, text: "boom")],
            lastSequence: 3, gap: true))
    }

    func parse(_ process: String) throws(ConfigError) -> ProcessSpec? {
        let yaml = """
            listen: 127.0.0.1:8080
            deployments:
              - name: shop
                path_prefix: /
                process:
            \(process.split(separator: "\n").map { "      " + $0 }.joined(separator: "\n"))
            """
        return try ConfigLoader.parse(yaml: yaml, source: "/tmp/gateway.yaml").deployments[0].process
    }

    @Test func logFileKeys() throws {
        let base = "command: [app]\nports: 9100-9101\n"
        #expect(try parse(base)?.logFile == nil)
        #expect(try parse(base + "log_file: /tmp/shop.log")?.logFile == LogFileSpec(path: "/tmp/shop.log", maxBytes: 10 << 20, keep: 5))
        #expect(try parse(base + "log_file: logs-$GATEWAY_INSTANCE/out.log\nlog_max_bytes: 4096\nlog_keep: 0")?.logFile
            == LogFileSpec(path: "/tmp/logs-$GATEWAY_INSTANCE/out.log", maxBytes: 4096, keep: 0))
        let errors: [(String, String)] = [
            ("log_keep: 3", "log_keep needs a log_file"),
            ("log_file: /no/such/dir/x.log", "no such directory for the log file: /no/such/dir"),
            ("log_file: /tmp/x.log\nlog_max_bytes: 100", "expected at least 4096 bytes, got 100"),
            ("log_file: /tmp/\n", "expected a file path"),
        ]
        for (extra, message) in errors {
            do {
                let spec = try parse(base + extra)
                Issue.record("accepted: \(extra) -> \(String(describing: spec?.logFile))")
            } catch {
                #expect("\(error)".contains(message), "\(error)")
            }
        }
    }
}

import Foundation
import Glibc
import Synchronization
import Testing
@testable import Supervisor

@Suite struct OutputLogTests {
    @Test func keepsLinesPerInstanceAcrossProcesses() async {
        let log = OutputLog()
        log.append(instance: "shop#1", pid: 10, stream: .stdout, text: "a")
        log.append(instance: "shop#2", pid: 11, stream: .stdout, text: "other")
        log.append(instance: "shop#1", pid: 12, stream: .stderr, text: "b")  // restarted
        let page = try? await log.read(OutputQuery(instance: "shop#1", lines: 10)).get()
        #expect(page?.lines.map(\.text) == ["a", "b"])
        #expect(page?.lines.map(\.pid) == [10, 12])
        #expect(page?.lines.map(\.sequence) == [1, 2])
        #expect(page?.lastSequence == 2)
        #expect(page?.gap == false)
        let unknown = try? await log.read(OutputQuery(instance: "nope#1", lines: 10)).get()
        #expect(unknown == OutputPage(lines: [], lastSequence: 0, gap: false))
    }

    /// `-f`: a read after the newest line waits until a line comes, and gets just that one.
    @Test func aLongPollIsAnsweredByTheNextLine() async throws {
        let log = OutputLog()
        log.append(instance: "shop#1", pid: 10, stream: .stdout, text: "old")
        let answered = Mutex<OutputPage?>(nil)
        log.read(OutputQuery(instance: "shop#1", lines: 100, after: 1, waitMilliseconds: 60_000)) { page in
            answered.withLock { $0 = page }
        }
        #expect(answered.withLock { $0 } == nil, "nothing new yet: it waits")
        log.append(instance: "shop#2", pid: 11, stream: .stdout, text: "someone else")
        #expect(answered.withLock { $0 } == nil, "another instance's line does not answer it")
        log.append(instance: "shop#1", pid: 10, stream: .stdout, text: "new")
        let page = try #require(answered.withLock { $0 })
        #expect(page.lines.map(\.text) == ["new"])
        #expect(page.lastSequence == 2)
    }

    @Test func aLongPollEndsEmptyWhenTheWaitIsOver() async throws {
        let log = OutputLog()
        log.append(instance: "shop#1", pid: 10, stream: .stdout, text: "old")
        let started = ContinuousClock.now
        let page = try await log.read(OutputQuery(instance: "shop#1", lines: 100, after: 1, waitMilliseconds: 200)).get()
        #expect(page.lines.isEmpty)
        #expect(page.lastSequence == 1)
        #expect(ContinuousClock.now - started >= .milliseconds(190))
        // An `after` beyond the newest line (a keeper that counts anew) is answered at once.
        let reset = try await log.read(OutputQuery(instance: "shop#1", lines: 100, after: 50, waitMilliseconds: 60_000)).get()
        #expect(reset.lines.map(\.text) == ["old"])
        #expect(reset.gap)
    }

    @Test func writesTheLogFileAndRotatesItBySize() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/shop.log"
        let log = OutputLog()
        log.setLogFile(LogFileSpec(path: path, maxBytes: 200, keep: 2), for: "shop#1")
        log.setLogFile(LogFileSpec(path: path, maxBytes: 200, keep: 2), for: "shop#2")
        // Each file line is "<24-char time> [shop#N] line NN\n" = 43 bytes: 4 fit in 200.
        for index in 10..<30 {
            log.append(instance: index % 2 == 0 ? "shop#1" : "shop#2", pid: 1, stream: .stdout, text: "line \(index)")
        }
        log.flushFiles()
        func lines(_ file: String) -> [String] {
            ((try? String(contentsOfFile: file, encoding: .utf8)) ?? "").split(separator: "\n").map { String($0.dropFirst(25)) }
        }
        #expect(lines(path) == ["[shop#1] line 26", "[shop#2] line 27", "[shop#1] line 28", "[shop#2] line 29"])
        #expect(lines(path + ".1") == ["[shop#1] line 22", "[shop#2] line 23", "[shop#1] line 24", "[shop#2] line 25"])
        #expect(lines(path + ".2").first == "[shop#1] line 18")
        #expect(!FileManager.default.fileExists(atPath: path + ".3"), "only log_keep rotated files are kept")
        for file in [path, path + ".1", path + ".2"] {
            let size = (try FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0
            #expect(size <= 200)
        }
        let first = try String(contentsOfFile: path, encoding: .utf8)
        #expect(first.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \[shop#1\] line 26\n"#, options: .regularExpression) != nil)
    }

    @Test func keepZeroStartsTheFileOver() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = RotatingLogFile(spec: LogFileSpec(path: directory + "/a.log", maxBytes: 10, keep: 0))
        #expect(file.write(Array("12345678\n".utf8)) == nil)
        #expect(file.write(Array("abcdefgh\n".utf8)) == nil)
        #expect(try String(contentsOfFile: directory + "/a.log", encoding: .utf8) == "abcdefgh\n")
        #expect(!FileManager.default.fileExists(atPath: directory + "/a.log.1"))
        // A missing directory is an error to report, not a crash; the next line tries again.
        let missing = RotatingLogFile(spec: LogFileSpec(path: directory + "/no/such.log", maxBytes: 10, keep: 1))
        #expect(missing.write(Array("x\n".utf8)) == ENOENT)
    }

    /// The relay feeds the log: lines without the prefix, per stream, with the writer's pid.
    @Test func theRelayKeepsWhatAProcessPrints() async throws {
        let log = OutputLog()
        let collector = LineCollector()
        let relay = OutputRelay(log: log) { line, stream in collector.append(line, stream) }
        let process = try ProcessSpawner(relay: relay).spawn(shell("echo one; echo two >&2; printf three", name: "web#1"))
        #expect(await process.exitStatus(within: .seconds(10)) == .exited(0))
        let page = try await log.read(OutputQuery(instance: "web#1", lines: 10)).get()
        #expect(Set(page.lines.map(\.text)) == ["one", "two", "three"])
        #expect(page.lines.first { $0.text == "two" }?.stream == .stderr)
        #expect(page.lines.allSatisfy { $0.pid == process.pid })
    }
}

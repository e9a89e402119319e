import Dispatch
import Glibc
import Testing
@testable import Supervisor

@Suite struct OutputRelayTests {
    /// The real standard writer (one write per line under the process-wide lock), pointed at a
    /// pipe this test reads instead of the test runner's own stdout and stderr: two processes
    /// writing long stdout lines and short stderr lines at once; every line must come out whole,
    /// with its own prefix, in its stream's order.
    @Test func concurrentOutputOfTwoProcessesNeverInterleaves() async throws {
        let (readEnd, writeEnd) = try #require(GNULibC.closeOnExecPipe())
        defer { close(readEnd) }
        let relay = OutputRelay.writing(stdout: writeEnd, stderr: writeEnd, maxLineBytes: 16 * 1024)

        // The writer blocks while the pipe is full, so read concurrently from a plain thread.
        let output = DispatchSemaphore(value: 0)
        let collected = LineCollector()
        DispatchQueue.global().async {
            var bytes: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let count = read(readEnd, &buffer, buffer.count)
                if count > 0 { bytes += buffer[..<count] } else if count < 0 && errno == EINTR { continue } else { break }
            }
            for line in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
                collected.append(String(decoding: line, as: UTF8.self), .stdout)
            }
            output.signal()
        }

        let lineCount = 300
        let script = """
            p=$(printf '%03000d' 0); i=0
            while [ $i -lt \(lineCount) ]; do echo "out $i $p"; echo "err $i" >&2; i=$((i+1)); done
            """
        let spawner = ProcessSpawner(relay: relay)
        let first = try spawner.spawn(shell(script, name: "a#1"))
        let second = try spawner.spawn(shell(script, name: "b#1"))
        defer {
            first.signalGroup(SIGKILL)
            second.signalGroup(SIGKILL)
        }
        #expect(await first.exitStatus(within: .seconds(60)) == .exited(0))
        #expect(await second.exitStatus(within: .seconds(60)) == .exited(0))
        close(writeEnd)
        let finished = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(returning: output.wait(timeout: .now() + 30) == .success)
            }
        }
        try #require(finished)

        let padding = String(repeating: "0", count: 3000)
        var expected: [String: Int] = [:]  // "[a#1] out" -> next index
        var lines = collected.lines.map(\.text)
        #expect(lines.removeLast() == "")  // the text ends with a newline
        for line in lines {
            let words = line.split(separator: " ", omittingEmptySubsequences: false)
            guard words.count >= 3, ["[a#1]", "[b#1]"].contains(words[0]),
                  ["out", "err"].contains(words[1]), let index = Int(words[2])
            else {
                Issue.record("not a whole relayed line: \(line.prefix(80))…")
                continue
            }
            let key = "\(words[0]) \(words[1])"
            #expect(index == expected[key, default: 0], "\(key) out of order")
            expected[key] = index + 1
            if words[1] == "out" {
                #expect(words.count == 4 && words[3] == padding[...], "cut or mixed: \(line.prefix(80))…")
            } else {
                #expect(words.count == 3)
            }
        }
        #expect(expected == ["[a#1] out": lineCount, "[a#1] err": lineCount,
                             "[b#1] out": lineCount, "[b#1] err": lineCount])
    }
}

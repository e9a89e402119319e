import Foundation
@testable import Gateway
import Logging
import Testing

/// The access log's writer thread on real files: bounded queue, reopen, the last lines at close.
@Suite struct AccessLogWriterTests {
    static func temporaryDirectory() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gateway-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    static func text(_ path: String) -> String {
        FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) } ?? ""
    }

    @Test func aFullQueueDropsAndCountsInsteadOfWaitingAndCloseWritesTheRest() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("access.log").path
        // No destination yet, so nothing drains the queue: the second batch does not fit.
        let writer = AccessLogWriter(logger: Logger(label: "test"), maxQueuedBytes: 100)
        writer.submit(Array(String(repeating: "a", count: 59).utf8) + [10], lines: 1)
        writer.submit(Array(String(repeating: "b", count: 59).utf8) + [10], lines: 1)
        #expect(writer.dropped == 1)
        try writer.configure(AccessLogConfig(path: path))
        #expect(writer.format == .json)
        writer.close()
        #expect(Self.text(path) == String(repeating: "a", count: 59) + "\n")
    }

    @Test func configureAgainReopensSoAMovedFileIsLeftBehind() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("access.log").path
        let writer = AccessLogWriter(logger: Logger(label: "test"))
        try writer.configure(AccessLogConfig(path: path, format: .combined))
        #expect(writer.format == .combined)
        writer.submit(Array("first\n".utf8), lines: 1)
        let deadline = ContinuousClock.now + .seconds(10)
        while Self.text(path) != "first\n", ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(Self.text(path) == "first\n")
        try FileManager.default.moveItem(atPath: path, toPath: path + ".1")
        try writer.configure(AccessLogConfig(path: path))
        writer.submit(Array("second\n".utf8), lines: 1)
        writer.close()
        #expect(Self.text(path) == "second\n")
        #expect(Self.text(path + ".1") == "first\n")
        #expect(writer.dropped == 0)
    }

    @Test func aPathThatCannotBeOpenedIsNamedAndChangesNothing() throws {
        let writer = AccessLogWriter(logger: Logger(label: "test"))
        #expect(throws: AccessLogWriter.OpenError.self) {
            try writer.configure(AccessLogConfig(path: "/nonexistent-directory/access.log"))
        }
        #expect(writer.format == nil)
        do {
            try writer.configure(AccessLogConfig(path: "/nonexistent-directory/access.log"))
        } catch {
            #expect("\(error)".hasPrefix("cannot open the access log /nonexistent-directory/access.log: "))
        }
        writer.close()
    }
}

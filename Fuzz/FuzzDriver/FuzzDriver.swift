import CLibFuzzer

#if canImport(Glibc)
import Glibc
#endif

/// The `main` of the gateway's libFuzzer targets, once for all of them. Built with
/// `-DFUZZING -sanitize=fuzzer` (Fuzz/run-*.sh): libFuzzer's driver with its usual flags, and an
/// input whose check fails prints the mismatch, flushes and aborts, so libFuzzer saves it as a
/// reproducer (the scripts turn Swift's backtracer off, or it takes the abort first). In an
/// ordinary build: replays the files it is given (a saved crash) and exits 1 if any fails.
public enum FuzzDriver {
    /// The check of the target being run: nil when the input is fine, else what went wrong.
    /// Set once before libFuzzer starts; libFuzzer's callback is a C function and cannot carry it.
    nonisolated(unsafe) private static var check: ([UInt8]) -> String? = { _ in nil }
    nonisolated(unsafe) private static var label = ""

    /// - Parameters:
    ///   - label: how a failure is named (`head scanner mismatch`).
    ///   - describe: what a replayed input that passes prints after `ok`.
    public static func run(
        label: String, check: @escaping ([UInt8]) -> String?, describe: ([UInt8]) -> String = { _ in "" }
    ) -> Never {
        #if FUZZING
        Self.check = check
        Self.label = label
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in FuzzDriver.one(data, size) })
        #else
        var failed = false
        for path in CommandLine.arguments.dropFirst() {
            guard let bytes = read(path) else {
                print("\(path): cannot read")
                failed = true
                continue
            }
            if let mismatch = check(bytes) {
                print("\(path): \(label): \(mismatch)")
                failed = true
            } else {
                let more = describe(bytes)
                print("\(path): ok" + (more.isEmpty ? "" : " (\(more))"))
            }
        }
        exit(failed ? 1 : 0)
        #endif
    }

    static func one(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
        let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
        if let mismatch = check(bytes) {
            print("\(label): \(mismatch)")
            fflush(nil)  // abort() does not flush
            abort()
        }
        return 0
    }

    static func read(_ path: String) -> [UInt8]? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = fread(&buffer, 1, buffer.count, file)
            if count <= 0 { break }
            bytes += buffer[0..<count]
        }
        return bytes
    }
}

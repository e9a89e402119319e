import CLibFuzzer
import FramingOracle

#if canImport(Glibc)
import Glibc
#endif

/// One input: any difference between what the gateway parsed and what its backend parses is a
/// crash, which libFuzzer saves as a reproducer.
func requestFramingFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    if let mismatch = FramingOracle.check(bytes) {
        print("request framing mismatch: \(mismatch)")
        abort()
    }
    return 0
}

/// Built with `-DFUZZING -sanitize=fuzzer` (Fuzz/run-request-framing.sh): libFuzzer's driver
/// with its usual flags. In an ordinary build: replays the files it is given (a saved crash).
@main
struct RequestFramingFuzzMain {
    static func main() {
        #if FUZZING
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in requestFramingFuzz(data, size) })
        #else
        var failed = false
        for path in CommandLine.arguments.dropFirst() {
            guard let bytes = read(path) else {
                print("\(path): cannot read")
                failed = true
                continue
            }
            if let mismatch = FramingOracle.check(bytes) {
                print("\(path): \(mismatch)")
                failed = true
            } else {
                print("\(path): ok")
            }
        }
        exit(failed ? 1 : 0)
        #endif
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

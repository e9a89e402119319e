import CLibFuzzer
import HeadScannerOracle

#if canImport(Glibc)
import Glibc
#endif

/// One input, read as a request and as a response: any message the scanners accept and NIO's
/// parser (llhttp) reads otherwise is a crash, which libFuzzer saves as a reproducer.
func headScannerFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    if let mismatch = HeadScannerOracle.check(bytes) {
        print("head scanner mismatch: \(mismatch)")
        fflush(nil)  // abort() does not flush
        abort()
    }
    return 0
}

/// Built with `-DFUZZING -sanitize=fuzzer` (Fuzz/run-head-scanner.sh): libFuzzer's driver with
/// its usual flags. In an ordinary build: replays the files it is given (a saved crash).
@main
struct HeadScannerFuzzMain {
    static func main() {
        #if FUZZING
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in headScannerFuzz(data, size) })
        #else
        var failed = false
        for path in CommandLine.arguments.dropFirst() {
            guard let bytes = read(path) else {
                print("\(path): cannot read")
                failed = true
                continue
            }
            if let mismatch = HeadScannerOracle.check(bytes) {
                print("\(path): \(mismatch)")
                failed = true
            } else {
                let request = HeadScannerOracle.checkRequest(bytes)
                let response = HeadScannerOracle.checkResponse(bytes)
                print("\(path): ok (as a request: \(request), as a response: \(response))")
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

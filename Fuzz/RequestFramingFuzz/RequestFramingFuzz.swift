import FramingOracle

#if canImport(Glibc)
import Glibc
#endif

/// libFuzzer's entry: any difference between what the gateway parsed and what its backend parses
/// is a crash, which libFuzzer saves as a reproducer.
@_cdecl("LLVMFuzzerTestOneInput")
public func requestFramingFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let mismatch = FramingOracle.check(bytes) {
        print("request framing mismatch: \(mismatch)")
        abort()
    }
    return 0
}

#if !FUZZING
/// Without libFuzzer (an ordinary build), replays the files it is given: a saved crash, say.
@main
struct ReplayRequestFraming {
    static func main() {
        var failed = false
        for path in CommandLine.arguments.dropFirst() {
            guard let file = fopen(path, "rb") else {
                print("\(path): cannot open")
                failed = true
                continue
            }
            var bytes: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let count = fread(&buffer, 1, buffer.count, file)
                if count <= 0 { break }
                bytes += buffer[0..<count]
            }
            fclose(file)
            if let mismatch = FramingOracle.check(bytes) {
                print("\(path): \(mismatch)")
                failed = true
            } else {
                print("\(path): ok")
            }
        }
        exit(failed ? 1 : 0)
    }
}
#endif

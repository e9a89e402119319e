import FuzzDriver
import HeadScannerOracle

/// One input, read as a request and as a response: any message the scanners accept and NIO's
/// parser (llhttp) reads otherwise is a failure, which libFuzzer saves as a reproducer.
@main
struct HeadScannerFuzzMain {
    static func main() {
        FuzzDriver.run(
            label: "head scanner mismatch", check: { HeadScannerOracle.check($0).map { "\($0)" } },
            describe: { bytes in
                "as a request: \(HeadScannerOracle.checkRequest(bytes)), as a response: \(HeadScannerOracle.checkResponse(bytes))"
            })
    }
}

import FramingOracle
import FuzzDriver

/// One input: any difference between what the gateway parsed and what its backend parses is a
/// failure, which libFuzzer saves as a reproducer.
@main
struct RequestFramingFuzzMain {
    static func main() {
        FuzzDriver.run(label: "request framing mismatch", check: { FramingOracle.check($0).map { "\($0)" } })
    }
}

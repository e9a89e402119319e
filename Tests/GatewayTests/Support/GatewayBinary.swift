import Foundation

/// Where the built `gateway` executable is, so end-to-end tests run the real binary.
///
/// The test target depends on the `Gateway` executable target, so `swift build --build-tests`
/// (and `swift test`) leave `gateway` beside the test bundle. The test runner may be started from
/// any directory, so the path is derived from where the test bundle itself lives, with the
/// package's `.build/debug` as a fallback.
enum GatewayBinary {
    /// Absolute path of the `gateway` executable; `$GATEWAY_BINARY` wins when set.
    ///
    /// When nothing is found this is still the most likely path, so that the spawn error names it.
    static let path: String = {
        let candidates = GatewayBinary.candidates()
        let fileManager = FileManager.default
        return candidates.first { fileManager.isExecutableFile(atPath: $0) } ?? candidates.last!
    }()

    private static func candidates(filePath: String = #filePath) -> [String] {
        var result: [String] = []
        if let override = ProcessInfo.processInfo.environment["GATEWAY_BINARY"], !override.isEmpty {
            result.append(override)
        }
        // Linux: the runner is `.build/<triple>/debug/<package>PackageTests.xctest`, an executable
        // in the same directory as `gateway`.
        let argv0 = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        result.append(argv0.deletingLastPathComponent().appendingPathComponent("gateway").path)
        // macOS: the runner is `xctest` or `swiftpm-testing-helper`; the bundle is a directory
        // `.build/<triple>/debug/<package>PackageTests.xctest`.
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
            let directory = URL(fileURLWithPath: bundle.bundlePath).deletingLastPathComponent()
            result.append(directory.appendingPathComponent("gateway").path)
        }
        // Fallback: this file is `<package>/Tests/GatewayTests/Support/GatewayBinary.swift`.
        let packageRoot = URL(fileURLWithPath: filePath)
            .deletingLastPathComponent()  // Support
            .deletingLastPathComponent()  // GatewayTests
            .deletingLastPathComponent()  // Tests
            .deletingLastPathComponent()
        result.append(packageRoot.appendingPathComponent(".build/debug/gateway").path)
        return result
    }
}

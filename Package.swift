// swift-tools-version:6.1
import PackageDescription

/// Release builds of the code on the request path skip the run-time exclusivity checks: every
/// access to a class's stored property began and ended an access record (about 5 % of the
/// proxy's CPU per request in perf). Debug builds, which the tests run, keep them, so a
/// violation still traps there.
let requestPathSettings: [SwiftSetting] = [
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))
]

let package = Package(
    name: "gateway",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "gateway", targets: ["Gateway"]),
        .library(name: "RequestControl", targets: ["RequestControl"]),
        .library(name: "Supervisor", targets: ["Supervisor"]),
        .library(name: "Membership", targets: ["Membership"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
    ],
    targets: [
        .systemLibrary(
            name: "CNghttp2",
            pkgConfig: "libnghttp2",
            providers: [.apt(["libnghttp2-dev"])]
        ),
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),
        // epoll, eventfd and malloc_trim, which Swift's Glibc module does not include (headers only).
        .systemLibrary(name: "CLinuxEvents"),
        .target(name: "RequestControl"),
        // Backends registered in etcd (roadmap step 8): key layout, values, and the view a
        // gateway keeps from a read and a watch. No NIO, no etcd client: the Gateway feeds it.
        .target(name: "Membership"),
        // The keeper protocol (roadmap step 7): messages, framing and descriptor passing between
        // the keeper that owns sockets and instances and the worker that serves. No NIO.
        .target(
            name: "Keeper",
            dependencies: ["Supervisor", .product(name: "Logging", package: "swift-log")]
        ),
        // The message rules of the proxy that decide what a backend reads: body framing, the
        // forwarded fields, Host and request-target. Its own module so the request-framing
        // fuzzer and its oracle run the gateway's very code.
        .target(
            name: "ProxyRules",
            dependencies: [.product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio")],
            swiftSettings: requestPathSettings
        ),
        .target(
            name: "FramingOracle",
            dependencies: [
                "ProxyRules",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            path: "Fuzz/FramingOracle"
        ),
        // libFuzzer target (Fuzz/run-request-framing.sh builds it with -sanitize=fuzzer); in an
        // ordinary build it replays the inputs it is given.
        .target(name: "CLibFuzzer", path: "Fuzz/CLibFuzzer"),
        // The main of every fuzz target: libFuzzer's driver, or a replay of saved inputs.
        .target(name: "FuzzDriver", dependencies: ["CLibFuzzer"], path: "Fuzz/FuzzDriver"),
        .executableTarget(
            name: "RequestFramingFuzz",
            dependencies: ["FramingOracle", "FuzzDriver"],
            path: "Fuzz/RequestFramingFuzz"
        ),
        // The one-pass HTTP/1.x head and chunked-body scanners checked against NIO's parser
        // (llhttp): the oracle is a library so GatewayTests runs it over fixed cases, and
        // Fuzz/run-head-scanner.sh fuzzes it.
        .target(
            name: "HeadScannerOracle",
            dependencies: [
                "ProxyRules",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            path: "Fuzz/HeadScannerOracle"
        ),
        .executableTarget(
            name: "HeadScannerFuzz",
            dependencies: ["HeadScannerOracle", "FuzzDriver"],
            path: "Fuzz/HeadScannerFuzz",
            exclude: ["corpus", "head-scanner.dict"]
        ),
        .target(
            name: "Supervisor",
            dependencies: [.product(name: "Logging", package: "swift-log")]
        ),
        .executableTarget(
            name: "Gateway",
            dependencies: [
                "RequestControl",
                "Keeper",
                "Supervisor",
                "Membership",
                "ProxyRules",
                "CNghttp2",
                "COpenSSL",
                "CLinuxEvents",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: requestPathSettings
        ),
        .executableTarget(
            name: "RequestControlBench",
            dependencies: ["RequestControl"],
            path: "bench/RequestControlBench"
        ),
        // A byte-copying NIO proxy with nothing else in it: the CPU floor NIO puts under any proxy
        // written on it, run beside the gateway and its peers by bench/proxy-vs-peers.sh.
        .executableTarget(
            name: "nio-floor",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "bench/NIOFloor",
            swiftSettings: requestPathSettings
        ),
        .testTarget(name: "RequestControlTests", dependencies: ["RequestControl"]),
        .testTarget(name: "SupervisorTests", dependencies: ["Supervisor"]),
        .testTarget(name: "MembershipTests", dependencies: ["Membership"]),
        .testTarget(name: "KeeperTests", dependencies: ["Keeper", "Supervisor"]),
        .testTarget(
            name: "GatewayTests",
            dependencies: [
                "Gateway",
                "RequestControl",
                "ProxyRules",
                "FramingOracle",
                "HeadScannerOracle",
                "Keeper",
                "COpenSSL",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            // Scripts the end-to-end tests run (h2peer.py); not sources, not resources.
            exclude: ["Fixtures"]
        ),
    ],
    swiftLanguageModes: [.v6]
)

import ArgumentParser
import CNghttp2
import COpenSSL

enum GatewayVersion {
    static let version = "0.1.0"

    /// The C libraries as the dynamic linker resolved them at run time, so a wrong or missing
    /// library shows here and not at the first TLS or HTTP/2 connection.
    static var nghttp2: String { String(cString: cnghttp2_runtime_version()) }
    static var openSSL: String { String(cString: copenssl_runtime_version()) }
}

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "version",
        abstract: "Print the gateway's version and the nghttp2 and OpenSSL versions it runs against."
    )

    func run() throws {
        print("gateway \(GatewayVersion.version)")
        print("nghttp2 \(GatewayVersion.nghttp2)")
        print("openssl \(GatewayVersion.openSSL)")
    }
}

import Foundation
import RequestControl
import Testing

@testable import Gateway

/// Admin query parameters are checked before they are converted: an absurd number is a 400 that
/// names the parameter, never a trap that takes the gateway down without a drain.
@Suite struct AdminAPIParameterTests {
    static func api() throws -> AdminAPI {
        let config = try ConfigLoader.parse(
            yaml: "listen: 127.0.0.1:8080\ndeployments:\n  - {name: shop, backends: [127.0.0.1:9]}\n",
            source: "test.yaml"
        )
        let controller = RequestController(configuration: BackendMembership.requestControlConfiguration(config))
        return AdminAPI(controller: controller, defaultSuspendTimeout: .seconds(1))
    }

    static func error(_ response: AdminResponse) -> String {
        let json = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
        return json?["error"] as? String ?? ""
    }

    @Test(arguments: ["1e300", "31536001", "1e19", "9.3e15"])
    func shutdownTimeoutBeyondAYearIs400(timeout: String) async throws {
        let api = try Self.api()
        let response = await api.handle(AdminRequest(method: "POST", uri: "/shutdown?timeout=\(timeout)"))
        #expect(response.status == 400)
        #expect(Self.error(response) == "timeout must be a number of seconds from 0 to 31536000 (365 days), got '\(timeout)'")
    }

    @Test(arguments: ["1e300", "31536001", "-1e300x", "nan", "inf"])
    func suspendTimeoutBeyondAYearIs400(timeout: String) async throws {
        let api = try Self.api()
        let response = await api.handle(AdminRequest(method: "POST", uri: "/suspend?timeout=\(timeout)"))
        #expect(response.status == 400)
        #expect(Self.error(response).hasPrefix("timeout must be a number of seconds up to 31536000 (365 days; "), "\(Self.error(response))")
    }

    @Test func suspendTimeoutsInRangeAreTaken() async throws {
        let api = try Self.api()
        for timeout in ["0", "0.5", "-1", "-1e300", "31536000"] {
            let response = await api.handle(AdminRequest(method: "POST", uri: "/suspend?timeout=\(timeout)&deployment=shop"))
            #expect(response.status == 200, "\(timeout): \(Self.error(response))")
            _ = await api.handle(AdminRequest(method: "POST", uri: "/resume?deployment=shop"))
        }
    }
}

@testable import Gateway
import Testing

@Suite struct DemoRouteTests {
    @Test(arguments: [
        ("/", DemoRoute.hello),
        ("/headers?a=b", .headers),
        ("/health", .health),
        ("/echo", .echo),
        ("/ws", .webSocketWithoutUpgrade),
        ("/sleep?ms=250", .sleep(milliseconds: 250)),
        ("/sleep?x=1&ms=0", .sleep(milliseconds: 0)),
        ("/bytes?n=65536", .bytes(65536)),
        ("/status/200", .status(200)),
        ("/status/599", .status(599)),
        ("/nope", .notFound),
        ("/health/", .notFound),
    ])
    func routes(uri: String, expected: DemoRoute) {
        #expect(DemoRoute(uri: uri) == expected)
    }

    @Test(arguments: [
        "/sleep", "/sleep?ms=", "/sleep?ms=-1", "/sleep?ms=600001", "/bytes?n=x", "/bytes?n=1073741825",
        "/status/199", "/status/600", "/status/", "/status/2x0",
    ])
    func badParameters(uri: String) {
        guard case .badRequest = DemoRoute(uri: uri) else {
            Issue.record("\(uri) should be a bad request, got \(DemoRoute(uri: uri))")
            return
        }
    }
}

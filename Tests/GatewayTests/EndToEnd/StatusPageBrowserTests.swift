import Foundation
import NIOHTTP1
import Testing

/// The live status page (`GET /` on the admin listener) in a real browser: headless Chromium
/// signs in through the form, and the assertions read the page's DOM while the gateway serves
/// slow requests and restarts an instance. What the page shows must follow the gateway live,
/// and a viewer must get no action buttons at all.
///
/// Skipped only when Chromium is missing and `GATEWAY_REQUIRE_BROWSER` is unset; CI sets it.
@Suite(
    .serialized,
    .enabled(
        if: HeadlessBrowser.shouldRun,
        "chromium is not installed (Debian package chromium, or $CHROMIUM) and GATEWAY_REQUIRE_BROWSER is unset: status page browser tests skipped"
    )
)
struct StatusPageBrowserTests {
    @Test func aViewerSeesInFlightRequestsAndARestartLiveAndHasNoButtons() async throws {
        let viewer = try await AdminTestUser(name: "viewer1", level: "viewer")
        let admin = try await AdminTestUser(name: "admin1", level: "admin")
        let harness = try await GatewayHarness(backends: 0, yaml: try Self.config(users: [viewer, admin]))
        let api = AuthorizedAdmin(harness: harness, token: admin.token)
        let rows = try await api.waitForReady(2)
        let firstPID = try #require(rows.first { $0["instance"] as? String == "shop#1" }?["pid"] as? Int)

        try await withBrowser { browser in
            try await Self.signIn(browser, port: harness.adminPort, token: viewer.token)

            // The process table as /processes has it, then the live figures.
            let shownPID = try await browser.waitFor(
                "shop#1's pid on the page", Self.number("[data-instance=\"shop#1\"] [data-field=\"pid\"]"))
            #expect(shownPID as? Int == firstPID)
            try await browser.waitFor("shop#2's row", Self.number("[data-instance=\"shop#2\"] [data-field=\"pid\"]"))
            try await browser.waitFor(
                "shop#1 READY on the page", "document.querySelector('[data-instance=\"shop#1\"] [data-field=\"state\"]')?.textContent === 'READY'")
            #expect(try await browser.eval(Self.text("[data-deployment=\"shop\"] [data-field=\"in_flight\"]")) as? String == "0")

            // A viewer's page has nothing to press: no action buttons, only signing out.
            #expect(try await browser.eval("document.querySelectorAll('[data-action]').length") as? Int == 0)
            #expect(try await browser.eval("[...document.querySelectorAll('button')].map(b => b.id).join(',')") as? String == "sign-out")
            // The session cookie is HttpOnly: the page's script cannot read it.
            #expect(try await browser.eval("document.cookie") as? String == "")
            // And the server refuses a viewer's action even with the page's CSRF token.
            let refused = try await browser.eval(
                """
                fetch('/resume?deployment=shop', {method: 'POST', credentials: 'same-origin',
                  headers: {'X-CSRF-Token': document.querySelector('meta[name="gateway-csrf"]').content}}).then(r => r.status)
                """)
            #expect(refused as? Int == 403)

            // In flight rises while slow requests run, and falls back to 0 after.
            let slowCount = 3
            let slow = Task {
                try await withThrowingTaskGroup(of: UInt.self) { group in
                    for _ in 0..<slowCount { group.addTask { try await harness.get("/sleep?ms=4000").status.code } }
                    var codes: [UInt] = []
                    for try await code in group { codes.append(code) }
                    return codes
                }
            }
            let inFlight = Self.number("[data-deployment=\"shop\"] [data-field=\"in_flight\"]")
            let peak = try await browser.waitFor("\(slowCount) requests in flight on the page", "(\(inFlight) >= \(slowCount)) && \(inFlight)")
            #expect((peak as? Int ?? 0) >= slowCount)
            let codes = try await slow.value
            #expect(codes == Array(repeating: 200, count: slowCount))
            try await browser.waitFor("in flight back to 0 on the page", "\(Self.text("[data-deployment=\"shop\"] [data-field=\"in_flight\"]")) === '0'")

            // A restart (by an admin, through the API) shows as a new pid and new events.
            let eventCount = "document.querySelector('#events').children.length"
            let eventsBefore = try await browser.eval(eventCount) as? Int ?? -1
            let (status, answer) = try await api.request(.POST, "/deployments/shop/instances/1/restart")
            #expect(status == 200, "restart answered \(status): \(answer)")
            let steps = answer["steps"] as? [[String: Any]] ?? []
            let newPID = try #require(steps.first?["new_pid"] as? Int, "no new_pid in \(answer)")
            #expect(newPID != firstPID)
            try await browser.waitFor(
                "shop#1's new pid \(newPID) on the page",
                "\(Self.number("[data-instance=\"shop#1\"] [data-field=\"pid\"]")) === \(newPID)")
            try await browser.waitFor(
                "shop#1 READY again on the page",
                "document.querySelector('[data-instance=\"shop#1\"] [data-field=\"state\"]')?.textContent === 'READY'")
            // The restart was asked for: planned, not a crash.
            try await browser.waitFor("shop#1's restarts as 0 crashes / 1 planned", "\(Self.text("[data-instance=\"shop#1\"] [data-field=\"restarts\"]")) === '0 / 1'")
            try await browser.waitFor("new entries in the events list (had \(eventsBefore))", "\(eventCount) > \(eventsBefore)")
            #expect(try await browser.eval("document.querySelector('#connection').textContent") as? String == "live")
            try await Self.screenshotIfAsked(browser, name: "viewer")
        }
    }

    @Test func anOperatorGetsButtonsThatActWithTheCSRFToken() async throws {
        let operatorUser = try await AdminTestUser(name: "ops1", level: "operator")
        let harness = try await GatewayHarness(backends: 0, yaml: try Self.config(users: [operatorUser]))
        let api = AuthorizedAdmin(harness: harness, token: operatorUser.token)
        try await api.waitForReady(2)

        try await withBrowser { browser in
            try await Self.signIn(browser, port: harness.adminPort, token: operatorUser.token)
            try await browser.waitFor("shop#2's row", Self.number("[data-instance=\"shop#2\"] [data-field=\"pid\"]"))
            // Suspend, resume and restart for the deployment and for each instance.
            #expect(try await browser.eval("document.querySelectorAll('[data-deployment=\"shop\"] .dep-head [data-action]').length") as? Int == 3)
            #expect(try await browser.eval("document.querySelectorAll('[data-instance=\"shop#1\"] [data-action]').length") as? Int == 3)
            #expect(try await browser.eval("document.querySelectorAll('[data-instance=\"shop#2\"] [data-action]').length") as? Int == 3)

            // Without the CSRF header the server refuses the page's POST.
            let bare = try await browser.eval(
                "fetch('/resume?deployment=shop', {method: 'POST', credentials: 'same-origin'}).then(r => r.status)")
            #expect(bare as? Int == 403)

            // The buttons ask first (the driver accepts), send the token, and the page follows.
            let state = "document.querySelector('[data-deployment=\"shop\"] [data-field=\"state\"]')?.textContent"
            try await browser.eval("document.querySelector('[data-deployment=\"shop\"] .dep-head [data-action=\"suspend\"]').click()")
            try await browser.waitFor("the deployment SUSPENDED on the page", "\(state) === 'SUSPENDED'")
            try await browser.waitFor("the suspend's answer in the status line", "document.querySelector('#action-status').dataset.kind === 'ok'")
            try await browser.eval("document.querySelector('[data-deployment=\"shop\"] .dep-head [data-action=\"resume\"]').click()")
            try await browser.waitFor("the deployment RUNNING again on the page", "\(state) === 'RUNNING'")
            let dialogs = try await browser.dialogs()
            #expect(dialogs.count == 2 && dialogs.allSatisfy { $0.contains("shop") }, "dialogs: \(dialogs)")
            let (_, stats) = try await api.request(.GET, "/stats")
            let deployments = stats["deployments"] as? [[String: Any]] ?? []
            #expect(deployments.first { $0["name"] as? String == "shop" }?["state"] as? String == "RUNNING")
            try await Self.screenshotIfAsked(browser, name: "operator")

            // Signing out ends the session: back to the form, and the cookie no longer works.
            _ = try? await browser.eval("document.getElementById('sign-out').click()")
            try await browser.waitFor("the sign-in form after signing out", "!!document.getElementById('token')")
            #expect(try await browser.eval("fetch('/stats', {credentials: 'same-origin'}).then(r => r.status)") as? Int == 401)
        }
    }

    @Test func thePageFollowsAShutdownDrainUntilTheConnectionCloses() async throws {
        let viewer = try await AdminTestUser(name: "viewer1", level: "viewer")
        let admin = try await AdminTestUser(name: "admin1", level: "admin")
        let harness = try await GatewayHarness(backends: 0, yaml: try Self.config(users: [viewer, admin], instances: 1))
        let api = AuthorizedAdmin(harness: harness, token: admin.token)
        try await api.waitForReady(1)

        try await withBrowser { browser in
            try await Self.signIn(browser, port: harness.adminPort, token: viewer.token)
            try await browser.waitFor("shop#1's row", Self.number("[data-instance=\"shop#1\"] [data-field=\"pid\"]"))

            // Two slow requests hold the drain open while the page is watched.
            let slow = Task {
                try await withThrowingTaskGroup(of: UInt.self) { group in
                    for _ in 0..<2 { group.addTask { try await harness.get("/sleep?ms=3000").status.code } }
                    var codes: [UInt] = []
                    for try await code in group { codes.append(code) }
                    return codes
                }
            }
            let inFlight = Self.number("[data-deployment=\"shop\"] [data-field=\"in_flight\"]")
            try await browser.waitFor("2 requests in flight on the page", "\(inFlight) >= 2")
            let (status, answer) = try await api.request(.POST, "/shutdown?timeout=20")
            #expect(status == 202, "shutdown answered \(status): \(answer)")

            // While it drains, the page is still live and shows the gateway leaving RUNNING.
            try await browser.waitFor(
                "the draining gateway on a live page",
                """
                ['PRE_SUSPEND', 'SUSPENDING', 'SUSPENDED'].includes(document.getElementById('gateway-state').textContent)
                  && document.getElementById('connection').textContent === 'live'
                """)
            #expect(try await slow.value == [200, 200])
            // Then the connection closes with the gateway; the page says so and keeps the last values.
            try await browser.waitFor(
                "the page to show the connection lost", "document.getElementById('connection').dataset.state === 'disconnected'",
                timeout: .seconds(30))
            #expect(try await browser.eval("document.querySelectorAll('[data-instance=\"shop#1\"]').length") as? Int == 1)
            #expect(try await harness.gateway.waitForExit(timeout: .seconds(30)) == 0)
        }
    }

    // MARK: Helpers

    /// A supervised deployment of demo-backend instances, and these admin users.
    static func config(users: [AdminTestUser], instances: Int = 2) throws -> String {
        let lines = users.map { "    - {name: \($0.name), token_sha256: \($0.digest), level: \($0.level)}" }
        let yaml = GatewayHarness.supervisedConfig(instances: instances)
        let admin = "admin:\n  listen: {admin}\n"
        guard yaml.contains(admin) else { throw TestSupportError("no '\(admin)' in the harness's config to add users to:\n\(yaml)") }
        return yaml.replacingOccurrences(of: admin, with: admin + "  users:\n" + lines.joined(separator: "\n") + "\n")
    }

    /// Opens the admin listener's `/`, which without a session is the sign-in form, types the
    /// token and submits it; the answer's cookie then gets the live page.
    static func signIn(_ browser: HeadlessBrowser, port: Int, token: String) async throws {
        try await browser.goto("http://127.0.0.1:\(port)/")
        try await browser.waitFor(
            "the sign-in form",
            "!!document.querySelector('form[method=\"post\"][action=\"/session\"] input#token[name=\"token\"][type=\"password\"]') && !!document.getElementById('sign-in')"
        )
        // The submit navigates away; the evaluation may or may not see its own end.
        _ = try? await browser.eval("document.getElementById('token').value = '\(token)'; document.getElementById('sign-in').click(); true")
        try await browser.waitFor("the status page, connected", "document.querySelector('#connection')?.textContent === 'live'", timeout: .seconds(20))
    }

    /// JavaScript for the text of the element `selector` matches (undefined when none does).
    static func text(_ selector: String) -> String {
        "document.querySelector('\(selector)')?.textContent"
    }

    /// JavaScript for the element's text as an integer, or 0 when it is absent or not one.
    static func number(_ selector: String) -> String {
        "(t => /^[0-9]+$/.test(t ?? '') ? Number(t) : 0)(document.querySelector('\(selector)')?.textContent)"
    }

    /// `GATEWAY_BROWSER_SCREENSHOTS=DIR` keeps a PNG of the page at the end of each test.
    static func screenshotIfAsked(_ browser: HeadlessBrowser, name: String) async throws {
        guard let directory = ProcessInfo.processInfo.environment["GATEWAY_BROWSER_SCREENSHOTS"], !directory.isEmpty else { return }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try await browser.screenshot(to: directory + "/status-page-\(name).png")
    }
}

/// Runs `body` with a fresh browser and stops the browser afterwards, also when `body` throws.
func withBrowser(_ body: (HeadlessBrowser) async throws -> Void) async throws {
    let browser = try await HeadlessBrowser.start()
    do {
        try await body(browser)
    } catch {
        await browser.stop()
        throw error
    }
    await browser.stop()
}

/// An admin user for a test's config: a fresh random token and its SHA-256, as `admin.users` wants.
struct AdminTestUser {
    var name: String
    var level: String
    var token: String
    var digest: String

    init(name: String, level: String) async throws {
        self.name = name
        self.level = level
        token = (UUID().uuidString + UUID().uuidString).replacingOccurrences(of: "-", with: "").lowercased()
        // Python's hashlib: python3 is already what the browser driver runs on.
        let run = try await ExternalTool.run(
            "python3", ["-c", "import hashlib, sys; print(hashlib.sha256(sys.argv[1].encode()).hexdigest())", token])
        guard run.status == 0, let hex = run.stdout.first, hex.count == 64 else {
            throw TestSupportError("the SHA-256 of a token failed:\n\(run.output)")
        }
        digest = hex
    }
}

/// The admin API with a bearer token: on TCP every endpoint but `/health` and `/ready` needs one.
struct AuthorizedAdmin {
    let harness: GatewayHarness
    let token: String

    func request(_ method: HTTPMethod, _ path: String) async throws -> (status: Int, json: [String: Any]) {
        let response = try await TestHTTPClient.withConnection(port: harness.adminPort) { client in
            try await client.request(method, path, headers: [("authorization", "Bearer \(token)")])
        }
        return (Int(response.status.code), GatewayHarness.json(response))
    }

    /// Waits until `count` instances of `deployment` are READY and returns their rows.
    @discardableResult
    func waitForReady(_ count: Int, deployment: String = "shop") async throws -> [[String: Any]] {
        let mine: ([[String: Any]]) -> [[String: Any]] = { rows in
            rows.filter { $0["deployment"] as? String == deployment && $0["state"] as? String == "READY" }
        }
        let rows = try await harness.poll(
            timeout: .seconds(20), "\(count) READY instances of \(deployment)",
            fetch: { try await request(.GET, "/processes").json["processes"] as? [[String: Any]] ?? [] },
            until: { mine($0).count == count })
        return mine(rows)
    }
}

import Membership
import Testing

@Suite struct MembershipViewTests {
    let prefix = "/gateway/"

    func entry(_ deployment: String, _ address: String, _ value: String, rev: Int64) -> MembershipView.KeyValue {
        .init(key: MemberRecord.key(prefix: prefix, deployment: deployment, address: address), value: Array(value.utf8), modRevision: rev, lease: 7)
    }

    @Test func aReadBecomesTheViewAndOtherKeysUnderThePrefixAreIgnored() {
        var view = MembershipView(prefix: prefix)
        let outcome = view.resync(revision: 10, entries: [
            entry("web", "127.0.0.1:9001", #"{"state":"serving","weight":3}"#, rev: 4),
            entry("web", "127.0.0.1:9002", "starting", rev: 5),
            .init(key: "/gateway/gateways/g1/routes", value: Array("{}".utf8), modRevision: 6),
            .init(key: "/gateway/deployments/web/locks/x", value: [], modRevision: 6),
        ])
        #expect(outcome.problems.isEmpty)
        #expect(outcome.changes.count == 2)
        #expect(view.revision == 10)
        let web = view.members(of: "web")
        #expect(web.map(\.address) == ["127.0.0.1:9001", "127.0.0.1:9002"])
        #expect(web.map(\.state) == [.serving, .starting])
        #expect(web.map(\.weight) == [3, 1])
        #expect(web[0].lease == 7)
    }

    @Test func watchEventsApplyOnceInOrderAndReplaysChangeNothing() {
        var view = MembershipView(prefix: prefix)
        _ = view.resync(revision: 10, entries: [entry("web", "127.0.0.1:9001", "serving", rev: 4)])
        let drain = entry("web", "127.0.0.1:9001", "draining", rev: 11)
        let join = entry("web", "127.0.0.1:9002", "serving", rev: 12)
        let first = view.apply([.put(drain), .put(join)])
        #expect(first.changes.count == 2)
        guard case .changed(let from, let to) = first.changes[0] else {
            Issue.record("expected a change, got \(first.changes)")
            return
        }
        #expect(from.state == .serving && to.state == .draining)
        #expect(first.changes[1] == .joined(view.members[.init(deployment: "web", address: "127.0.0.1:9002")]!))
        #expect(view.revision == 12)
        // A reconnected watch that starts too early repeats them: nothing happens twice.
        #expect(view.apply([.put(drain), .put(join)]).changes.isEmpty)
        // An older write arriving late cannot undo a newer one.
        #expect(view.apply([.put(entry("web", "127.0.0.1:9001", "serving", rev: 9))]).changes.isEmpty)
        #expect(view.members(of: "web")[0].state == .draining)

        let left = view.apply([.delete(key: drain.key, modRevision: 13)])
        #expect(left.changes.count == 1)
        if case .left(let member) = left.changes.first { #expect(member.address == "127.0.0.1:9001") } else { Issue.record("expected a leave") }
        #expect(view.apply([.delete(key: drain.key, modRevision: 13)]).changes.isEmpty)
        #expect(view.members(of: "web").map(\.address) == ["127.0.0.1:9002"])
    }

    @Test func aReadAfterALostWatchReportsOnlyTheDifference() {
        var view = MembershipView(prefix: prefix)
        _ = view.resync(revision: 10, entries: [
            entry("web", "127.0.0.1:9001", "serving", rev: 4),
            entry("web", "127.0.0.1:9002", "serving", rev: 5),
            entry("api", "127.0.0.1:9100", "serving", rev: 6),
        ])
        // While the watch was down: 9001 deleted (its lease expired), 9002 drained, 9003 joined.
        let outcome = view.resync(revision: 20, entries: [
            entry("web", "127.0.0.1:9002", "draining", rev: 15),
            entry("web", "127.0.0.1:9003", "serving", rev: 16),
            entry("api", "127.0.0.1:9100", "serving", rev: 6),
        ])
        #expect(outcome.changes.count == 3)
        #expect(outcome.changes.contains { if case .left(let m) = $0 { m.address == "127.0.0.1:9001" } else { false } })
        #expect(outcome.changes.contains { if case .changed(_, let m) = $0 { m.address == "127.0.0.1:9002" && m.state == .draining } else { false } })
        #expect(outcome.changes.contains { if case .joined(let m) = $0 { m.address == "127.0.0.1:9003" } else { false } })
        #expect(view.revision == 20)
    }

    @Test func aReadOlderThanTheViewIsIgnored() {
        var view = MembershipView(prefix: prefix)
        _ = view.resync(revision: 10, entries: [entry("web", "127.0.0.1:9001", "serving", rev: 4)])
        let outcome = view.resync(revision: 8, entries: [])
        #expect(outcome.stale)
        #expect(view.members.count == 1)
    }

    @Test func aBadValueIsAProblemAndLeavesTheMemberAsItWas() {
        var view = MembershipView(prefix: prefix)
        _ = view.resync(revision: 10, entries: [entry("web", "127.0.0.1:9001", "serving", rev: 4)])
        let cases: [(String, String)] = [
            ("servng", "unknown state"),
            (#"{"state":"serving","weight":0}"#, "weight 0"),
            (#"{"weight":2}"#, "not {"),
            ("{not json", "not {"),
        ]
        var rev: Int64 = 11
        for (value, reason) in cases {
            let outcome = view.apply([.put(entry("web", "127.0.0.1:9001", value, rev: rev))])
            rev += 1
            #expect(outcome.changes.isEmpty, "\(value)")
            #expect(outcome.problems.count == 1 && outcome.problems[0].reason.contains(reason), "\(value): \(outcome.problems)")
            #expect(view.members(of: "web")[0].state == .serving)
        }
        let badAddress = view.apply([.put(.init(
            key: "/gateway/deployments/web/backends/nohost", value: Array("serving".utf8), modRevision: rev))])
        #expect(badAddress.problems.first?.reason.contains("HOST:PORT") == true)
        #expect(view.members.count == 1)
    }

    @Test func keysAndValuesRoundTrip() {
        let key = MemberRecord.key(prefix: prefix, deployment: "web", address: "[::1]:8080")
        #expect(key == "/gateway/deployments/web/backends/[::1]:8080")
        #expect(MemberRecord.id(key: key, prefix: prefix) == MemberID(deployment: "web", address: "[::1]:8080"))
        #expect(MemberRecord.id(key: "/gateway/deployments/web/backends/a/b", prefix: prefix) == nil)
        #expect(MemberRecord.id(key: "/other/deployments/web/backends/a:1", prefix: prefix) == nil)
        for state in MemberState.allCases {
            for weight in [1, 5] {
                let value = MemberRecord.value(state: state, weight: weight)
                let member = try? MemberRecord.member(key: key, value: Array(value.utf8), prefix: prefix, modRevision: 1, lease: 0)?.get()
                #expect(member?.state == state && member?.weight == weight, "\(value)")
            }
        }
    }
}

@Suite struct DrainProgressTests {
    let member = MemberID(deployment: "web", address: "127.0.0.1:9001")

    @Test func aDrainIsDoneWhenEveryLiveGatewaySawItAndLetGo() {
        let key = member.description
        func report(_ id: String, _ revision: Int64, _ backend: GatewayReport.Backend?) -> GatewayReport {
            GatewayReport(gateway: id, revision: revision, backends: backend.map { [key: $0] } ?? [:])
        }
        let stillRouting = DrainProgress(member: member, drainRevision: 20, reports: [
            report("a", 21, .init(routed: false, inFlight: 0)),
            report("b", 21, .init(routed: true, inFlight: 3)),
        ])
        #expect(stillRouting.waitingOn.keys.sorted() == ["b"])
        let behind = DrainProgress(member: member, drainRevision: 20, reports: [report("a", 19, nil)])
        #expect(behind.waitingOn["a"]?.contains("has not seen") == true)
        let inFlight = DrainProgress(member: member, drainRevision: 20, reports: [report("a", 20, .init(routed: false, inFlight: 2))])
        #expect(inFlight.waitingOn["a"] == "2 request(s) in flight")
        let done = DrainProgress(member: member, drainRevision: 20, reports: [
            report("a", 20, .init(routed: false, inFlight: 0)), report("b", 25, nil),
        ])
        #expect(done.isDone)
        #expect(DrainProgress(member: member, drainRevision: 20, reports: []).isDone)
    }

    @Test func reportsRoundTripAsJSON() {
        let report = GatewayReport(gateway: "host-a", revision: 42, backends: ["web/127.0.0.1:9001": .init(routed: false, inFlight: 4)])
        let text = report.encoded()
        #expect(text.contains(#""in_flight":4"#))
        #expect(GatewayReport.decode(Array(text.utf8)) == report)
        #expect(GatewayReport.decode(Array("nonsense".utf8)) == nil)
        #expect(GatewayReport.key(prefix: "/g/", gateway: "host-a") == "/g/gateways/host-a/routes")
    }
}

@Suite struct FleetRollTests {
    @Test func aRollIsFinishedWhenEveryLiveParticipantIsDoneAndTheDeadAreLost() {
        typealias S = FleetRoll.Status
        let participants: Set<String> = ["a", "b", "c"]
        let rolling = FleetRoll.Progress(id: "r1", participants: participants, live: participants, statuses: [
            S(id: "r1", gateway: "a", state: .done), S(id: "r1", gateway: "b", state: .rolling), S(id: "r0", gateway: "c", state: .done),
        ])
        #expect(rolling.pending == ["b", "c"])
        #expect(!rolling.finished)
        // b died mid-roll (status and report gone with its lease); c skips the deployment.
        let after = FleetRoll.Progress(id: "r1", participants: participants, live: ["a", "c"], statuses: [
            S(id: "r1", gateway: "a", state: .done), S(id: "r1", gateway: "c", state: .skipped),
        ])
        #expect(after.finished)
        #expect(after.lost == ["b"])
    }

    @Test func keysAndValuesRoundTrip() {
        #expect(FleetRoll.requestKey(prefix: "/g/", deployment: "shop") == "/g/rolls/shop/request")
        #expect(FleetRoll.split(key: "/g/rolls/shop/status/host-a:8080", prefix: "/g/")! == ("shop", "status/host-a:8080"))
        #expect(FleetRoll.split(key: "/g/other", prefix: "/g/") == nil)
        let request = FleetRoll.Request(id: "x", maxUnavailable: 2)
        #expect(FleetRoll.encode(request) == #"{"id":"x","max_unavailable":2}"#)
        #expect(FleetRoll.decode(FleetRoll.Request.self, Array(FleetRoll.encode(request).utf8)) == request)
    }
}

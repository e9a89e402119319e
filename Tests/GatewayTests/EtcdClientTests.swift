import Membership
import Testing

@testable import Gateway

/// The etcd JSON gateway's watch lines, as etcd 3.4 writes them (captured from a real one).
@Suite struct EtcdClientTests {
    @Test func watchLinesBecomeMessages() throws {
        let created = #"{"result":{"header":{"cluster_id":"3249","member_id":"3319","revision":"2","raft_term":"2"},"created":true}}"#
        #expect(try EtcdClient.watchMessage(Array(created.utf8)) == .created(revision: 2))

        // A put has no "type" (PUT is the default); keys and values are base64.
        let put = #"{"result":{"header":{"revision":"2"},"events":[{"kv":{"key":"L2dhdGV3YXkvZGVwbG95bWVudHMvd2ViL2JhY2tlbmRzLzEyNy4wLjAuMTo5MDAx","create_revision":"2","mod_revision":"2","version":"1","value":"eyJzdGF0ZSI6InNlcnZpbmcifQ==","lease":"7"}}]}}"#
        let expectedPut = MembershipView.KeyValue(
            key: "/gateway/deployments/web/backends/127.0.0.1:9001", value: Array(#"{"state":"serving"}"#.utf8), modRevision: 2, lease: 7)
        #expect(try EtcdClient.watchMessage(Array(put.utf8)) == .events([.put(expectedPut)], revision: 2))

        let delete = #"{"result":{"header":{"revision":"3"},"events":[{"type":"DELETE","kv":{"key":"L2dhdGV3YXkvZGVwbG95bWVudHMvd2ViL2JhY2tlbmRzLzEyNy4wLjAuMTo5MDAx","mod_revision":"3"}}]}}"#
        #expect(try EtcdClient.watchMessage(Array(delete.utf8))
            == .events([.delete(key: "/gateway/deployments/web/backends/127.0.0.1:9001", modRevision: 3)], revision: 3))

        // Compacted past the watch's start: etcd cancels it and says where it compacted to.
        let compacted = #"{"result":{"header":{"cluster_id":"3249","member_id":"3319","raft_term":"2"},"canceled":true,"compact_revision":"3"}}"#
        #expect(try EtcdClient.watchMessage(Array(compacted.utf8)) == .compacted(revision: 3))

        // A progress notification: no events, the store's revision.
        let progress = #"{"result":{"header":{"revision":"40"}}}"#
        #expect(try EtcdClient.watchMessage(Array(progress.utf8)) == .events([], revision: 40))

        #expect(try EtcdClient.watchMessage(Array("\r\n".utf8)) == nil)
        #expect(throws: EtcdClient.Failure.self) { try EtcdClient.watchMessage(Array(#"{"error":{"grpc_code":14}}"#.utf8)) }
        #expect(throws: EtcdClient.Failure.self) {
            try EtcdClient.watchMessage(Array(#"{"result":{"header":{},"canceled":true,"cancel_reason":"permission denied"}}"#.utf8))
        }
    }

    @Test func theRangeEndOfAPrefixIsItsLastByteOneHigher() {
        #expect(EtcdClient.rangeEnd("/gateway/") == "/gateway0")
        #expect(EtcdClient.rangeEnd("a") == "b")
    }
}

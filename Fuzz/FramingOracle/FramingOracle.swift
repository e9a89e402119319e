import NIOCore
import NIOEmbedded
import NIOHTTP1
import ProxyRules

/// Checks, for any bytes a client may send on one HTTP/1.1 connection, that the requests a
/// backend parses from what the gateway forwards are exactly the requests the gateway parsed:
/// as many, in the same order, each with the same method, target and body. Request smuggling is
/// any difference.
///
/// It runs the gateway's own pieces, as the HTTP/1.1 proxy uses them: the head scanner, the
/// plan of where the request goes (`ForwardedRequestHead.plan`), the head the backend gets
/// written as bytes, and the body passed through as it came (a chunked one counted by the chunk
/// scanner, never re-encoded); then NIO's decoder (llhttp) stands for the backend. What the
/// proxy handler adds around them (routing, admission) decides where a request goes, never how
/// it is framed.
public enum FramingOracle {
    /// A request as a parser saw it.
    public struct Request: Equatable, Sendable, CustomStringConvertible {
        public var method: String
        public var uri: String
        public var body: [UInt8]

        public var description: String {
            "\(method) \(uri) body=\(body.count)"
        }
    }

    public struct Mismatch: Error, CustomStringConvertible {
        public var parsed: [Request]
        public var forwarded: [Request]
        public var backendError: String?
        public var description: String {
            "gateway parsed \(parsed), backend parsed \(forwarded)" + (backendError.map { ", backend error: \($0)" } ?? "")
        }
    }

    /// What the gateway would forward for `bytes`, and what the backend parses from it.
    ///
    /// - Parameter legacyFraming: forward as the gateway did before it wrote the framing itself
    ///   (the client's framing fields dropped as hop-by-hop, NIO's encoder left to frame by
    ///   method); only for showing that the oracle catches that.
    public static func run(
        _ bytes: [UInt8], legacyFraming: Bool = false
    ) -> (parsed: [Request], forwarded: [Request], backendError: String?) {
        if !legacyFraming { return runLean(bytes) }
        let (heads, _) = decode(bytes)
        var parsed: [Request] = []
        var wire: [UInt8] = []
        for (head, body, trailers) in heads {
            // The refusals the proxy makes before anything reaches a backend end the connection.
            guard case .success(let framing) = LegacyForwarding.body(of: head.headers),
                case .success(let target) = LegacyForwarding.target(head),
                head.method != .CONNECT
            else { break }
            var inbound = head.headers
            if let host = target.host, target.uri != head.uri { inbound.replaceOrAdd(name: "host", value: host) }
            var outbound = LegacyForwarding.head(
                method: head.method, uri: target.uri, headers: inbound, body: framing,
                clientAddress: "127.0.0.1", scheme: "http")
            if legacyFraming {
                outbound.headers.remove(name: "content-length")
                outbound.headers.remove(name: "transfer-encoding")
            }
            parsed.append(Request(method: head.method.rawValue, uri: target.uri, body: body))
            wire += encode(outbound, body: body, trailers: trailers, automaticFraming: legacyFraming)
            // llhttp stops after an upgrade request; the proxy either tunnels (no more HTTP) or
            // starts a new parser on the bytes after it, which `decode` does not model.
            if head.headers.contains(name: "upgrade") { break }
        }
        let (backendHeads, backendError) = decode(wire)
        let forwarded = backendHeads.map { Request(method: $0.0.method.rawValue, uri: $0.0.uri, body: $0.1) }
        return (parsed, forwarded, backendError)
    }

    /// The lean path: requests one after the other as the proxy takes them up, until one is
    /// refused or incomplete.
    static func runLean(_ bytes: [UInt8]) -> (parsed: [Request], forwarded: [Request], backendError: String?) {
        var parsed: [Request] = []
        var wire = ByteBuffer()
        var fields: [HTTP1Field] = []
        bytes.withUnsafeBytes { all in
            var offset = 0
            while offset < all.count {
                let rest = UnsafeRawBufferPointer(rebasing: all[offset...])
                fields.removeAll(keepingCapacity: true)
                guard case .complete(let head) = HTTP1HeadScanner.scanRequest(rest, maxHeadBytes: 64 * 1024, fields: &fields)
                else { return }
                let method = String(decoding: rest[head.method], as: UTF8.self)
                // The proxy answers CONNECT and unknown methods itself; a body after them is
                // dropped, and the connection closes.
                guard method != "CONNECT", HTTP1Method.isKnown(rest[head.method]), case .success(let plan) = ForwardedRequestHead.plan(head, bytes: rest) else { return }
                var out = ByteBuffer()
                let id: StaticString = "oracle"
                ForwardedRequestHead.write(
                    head, fields: fields, bytes: rest,
                    additions: .init(
                        target: plan.target, host: plan.host, clientAddress: "127.0.0.1", scheme: "http",
                        requestID: UnsafeRawBufferPointer(start: id.utf8Start, count: id.utf8CodeUnitCount), body: plan.body),
                    into: &out)
                var body: [UInt8] = []
                var consumed = head.length
                switch plan.body {
                case .none:
                    break
                case .length(let count):
                    guard rest.count - head.length >= count else { return }
                    let range = head.length..<(head.length + count)
                    body = Array(rest[range])
                    out.writeBytes(UnsafeRawBufferPointer(rebasing: rest[range]))
                    consumed += count
                case .chunked:
                    var scanner = ChunkedBodyScanner()
                    let bodyBytes = UnsafeRawBufferPointer(rebasing: rest[head.length...])
                    let result = scanner.scan(bodyBytes) { range in body += bodyBytes[range] }
                    guard case .success(let step) = result, step.finished else { return }
                    out.writeBytes(UnsafeRawBufferPointer(rebasing: bodyBytes[..<step.consumed]))
                    consumed += step.consumed
                }
                let uri = plan.target ?? String(decoding: rest[head.target], as: UTF8.self)
                parsed.append(Request(method: method, uri: uri, body: body))
                wire.writeBuffer(&out)
                offset += consumed
            }
        }
        let (backendHeads, backendError) = decode(Array(wire.readableBytesView))
        let forwarded = backendHeads.map { Request(method: $0.0.method.rawValue, uri: $0.0.uri, body: $0.1) }
        return (parsed, forwarded, backendError)
    }

    /// nil when the backend parses exactly what the gateway parsed.
    public static func check(_ bytes: [UInt8], legacyFraming: Bool = false) -> Mismatch? {
        let (parsed, forwarded, backendError) = run(bytes, legacyFraming: legacyFraming)
        if parsed == forwarded, backendError == nil { return nil }
        return Mismatch(parsed: parsed, forwarded: forwarded, backendError: backendError)
    }

    /// The complete requests in `bytes` (head, body, trailers), up to a parse error if any.
    static func decode(_ bytes: [UInt8]) -> ([(HTTPRequestHead, [UInt8], HTTPHeaders?)], String?) {
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish() }
        var error: String?
        do {
            try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
            try channel.writeInbound(ByteBuffer(bytes: bytes))
        } catch let caught {
            error = "\(caught)"
        }
        var requests: [(HTTPRequestHead, [UInt8], HTTPHeaders?)] = []
        var current: (HTTPRequestHead, [UInt8])?
        while let part = try? channel.readInbound(as: HTTPServerRequestPart.self) {
            switch part {
            case .head(let head): current = (head, [])
            case .body(let buffer): current?.1 += buffer.readableBytesView
            case .end(let trailers):
                if let done = current { requests.append((done.0, done.1, trailers)) }
                current = nil
            }
        }
        return (requests, error)
    }

    /// The bytes the upstream encoder writes for one request, configured as the gateway's pool.
    static func encode(_ head: HTTPRequestHead, body: [UInt8], trailers: HTTPHeaders?, automaticFraming: Bool) -> [UInt8] {
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish() }
        var configuration = HTTPRequestEncoder.Configuration()
        configuration.automaticallySetFramingHeaders = automaticFraming
        var out: [UInt8] = []
        do {
            try channel.pipeline.syncOperations.addHandler(HTTPRequestEncoder(configuration: configuration))
            try channel.writeOutbound(HTTPClientRequestPart.head(head))
            if !body.isEmpty { try channel.writeOutbound(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: body)))) }
            try channel.writeOutbound(HTTPClientRequestPart.end(trailers))
            while let buffer = try channel.readOutbound(as: IOData.self) {
                if case .byteBuffer(let bytes) = buffer { out += bytes.readableBytesView }
            }
        } catch {
            return []
        }
        return out
    }
}

import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One admin API answer: the status and the whole body (admin answers are small).
struct AdminHTTPResponse: Sendable, Equatable {
    var status: Int
    var body: [UInt8]

    var isSuccess: Bool { (200..<300).contains(self.status) }
}

/// Why no answer came back from the admin API. Every case maps to exit code 2: the operator's
/// next step is to check the address or whether the gateway runs, not the operation.
enum AdminClientError: Error, Sendable, CustomStringConvertible {
    /// No connection: refused, unresolvable host, connect timeout.
    case unreachable(AdminEndpoint, reason: String)
    /// Connected, but no whole answer within the request timeout.
    case timedOut(AdminEndpoint, after: Duration)
    /// The peer closed (or reset) the connection before a whole answer.
    case closedEarly(AdminEndpoint, reason: String)
    /// Something answered that is not HTTP, or not the admin API.
    case notAdminAPI(AdminEndpoint, reason: String)

    var description: String {
        switch self {
        case .unreachable(let endpoint, let reason):
            return "cannot reach the admin API at \(endpoint): \(reason)"
        case .timedOut(let endpoint, let after):
            return "no answer from the admin API at \(endpoint) within \(AdminFormat.seconds(after))"
        case .closedEarly(let endpoint, let reason):
            return "the admin API at \(endpoint) closed the connection before answering (\(reason))"
        case .notAdminAPI(let endpoint, let reason):
            return "\(endpoint) does not answer like the gateway's admin API: \(reason)"
        }
    }
}

/// A one-shot HTTP/1.1 client for the admin API: one connection per request, `Connection:
/// close`, the whole answer collected.
///
/// The CLI sends one request per run, so there is nothing to gain from pooling; what matters is
/// that every failure is bounded (connect timeout, request timeout) and told apart from an
/// answer the gateway gave.
struct AdminClient: Sendable {
    /// Admin answers are JSON documents; anything larger is not the admin API.
    static let maxBodyBytes = 16 << 20

    var endpoint: AdminEndpoint
    var connectTimeout: Duration = .seconds(5)
    /// Sent as `Authorization: Bearer`; on the socket, it acts as that user instead of the
    /// local one.
    var token: String? = nil

    /// Sends `method path?query` and returns the answer, whatever its status.
    ///
    /// - Parameter timeout: bound on the whole exchange after connecting; `nil` waits as long
    ///   as the server keeps the connection open (a suspend with a negative timeout).
    func send(
        _ method: HTTPMethod,
        _ path: String,
        query: [(name: String, value: String)] = [],
        timeout: Duration?
    ) async throws(AdminClientError) -> AdminHTTPResponse {
        let endpoint = self.endpoint
        let uri = Self.requestURI(basePath: endpoint.basePath, path: path, query: query)
        let connection = try await self.connect()

        var headers = self.headers(accept: "application/json")
        headers.add(name: "connection", value: "close")
        if method == .POST || method == .PUT {
            headers.add(name: "content-length", value: "0")
        }
        let head = HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: headers)

        // The deadline closes the channel, which ends the read below; the flag tells that
        // apart from the server closing it.
        let timedOut = DeadlineFlag()
        let channel = connection.channel
        let timer = timeout.map { timeout in
            channel.eventLoop.scheduleTask(in: TimeAmount(timeout)) {
                timedOut.set()
                channel.close(promise: nil)
            }
        }
        defer { timer?.cancel() }

        let outcome: Result<AdminHTTPResponse, AdminClientError>
        do {
            outcome = try await connection.executeThenClose { inbound, outbound in
                // One write for the whole request: the head alone is a complete POST (no body),
                // so the gateway may answer and close before a separate write of the end, which
                // would then fail on the closed channel and lose the answer (seen under load).
                try await outbound.write(contentsOf: [.head(head), .end(nil)])
                return try await Self.readResponse(inbound, endpoint: endpoint)
            }
        } catch {
            if timedOut.isSet, let timeout {
                throw .timedOut(endpoint, after: timeout)
            }
            if error is HTTPParserError {
                throw .notAdminAPI(endpoint, reason: "the answer is not HTTP (\(error))")
            }
            throw .closedEarly(endpoint, reason: Self.describe(error))
        }
        switch outcome {
        case .success(let response):
            return response
        case .failure(let error):
            if timedOut.isSet, let timeout { throw .timedOut(endpoint, after: timeout) }
            throw error
        }
    }

    /// `GET path` as a stream: `body` gets each piece of the answer as it arrives, until the
    /// server ends it or closes. Returns the status; a non-2xx answer is collected whole and
    /// returned instead (its body is an error message, not a stream).
    func stream(_ path: String, query: [(name: String, value: String)] = [], body: @Sendable @escaping ([UInt8]) -> Void) async throws(AdminClientError) -> AdminHTTPResponse {
        let endpoint = self.endpoint
        let uri = Self.requestURI(basePath: endpoint.basePath, path: path, query: query)
        let connection = try await self.connect()
        let headers = self.headers(accept: "text/event-stream")
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: uri, headers: headers)
        // A stream the server closes after it began (a shutdown, a worker replaced) has ended,
        // not failed.
        let streamed = DeadlineFlag()
        do {
            return try await connection.executeThenClose { inbound, outbound in
                try await outbound.write(contentsOf: [.head(head), .end(nil)])
                var status = 0
                var collected: [UInt8] = []
                for try await part in inbound {
                    switch part {
                    case .head(let responseHead):
                        status = Int(responseHead.status.code)
                    case .body(let buffer):
                        if (200..<300).contains(status) {
                            streamed.set()
                            body(Array(buffer.readableBytesView))
                        } else if collected.count < Self.maxBodyBytes {
                            collected.append(contentsOf: buffer.readableBytesView)
                        }
                    case .end:
                        if status >= 200 { return AdminHTTPResponse(status: status, body: collected) }
                    }
                }
                return AdminHTTPResponse(status: status, body: collected)
            }
        } catch {
            if streamed.isSet { return AdminHTTPResponse(status: 200, body: []) }
            throw .closedEarly(endpoint, reason: Self.describe(error))
        }
    }

    /// One new connection to the admin API, over TCP or the Unix socket.
    private func connect() async throws(AdminClientError) -> NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart> {
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connectTimeout(TimeAmount(self.connectTimeout))
        let initializer: @Sendable (Channel) -> EventLoopFuture<NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>> = { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHTTPClientHandlers()
                return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
            }
        }
        do {
            if let path = endpoint.socketPath {
                return try await bootstrap.connect(unixDomainSocketPath: path, channelInitializer: initializer)
            }
            return try await bootstrap.connect(host: endpoint.host, port: endpoint.port, channelInitializer: initializer)
        } catch {
            throw .unreachable(endpoint, reason: Self.describeConnectFailure(error))
        }
    }

    /// Host, user agent, what the answer should be, and the token when there is one.
    private func headers(accept: String) -> HTTPHeaders {
        var headers = HTTPHeaders()
        headers.add(name: "host", value: endpoint.hostHeader)
        headers.add(name: "user-agent", value: "gateway-cli/\(GatewayVersion.version)")
        headers.add(name: "accept", value: accept)
        if let token { headers.add(name: "authorization", value: "Bearer \(token)") }
        return headers
    }

    private static func readResponse(
        _ inbound: NIOAsyncChannelInboundStream<HTTPClientResponsePart>,
        endpoint: AdminEndpoint
    ) async throws -> Result<AdminHTTPResponse, AdminClientError> {
        var status: Int?
        var body: [UInt8] = []
        for try await part in inbound {
            switch part {
            case .head(let head):
                status = Int(head.status.code)
            case .body(let buffer):
                guard body.count + buffer.readableBytes <= Self.maxBodyBytes else {
                    return .failure(.notAdminAPI(endpoint, reason: "the answer is larger than \(Self.maxBodyBytes) bytes"))
                }
                body.append(contentsOf: buffer.readableBytesView)
            case .end:
                // A 1xx head is followed by the real one; only a final status ends the exchange.
                guard let code = status, code >= 200 else { continue }
                return .success(AdminHTTPResponse(status: code, body: body))
            }
        }
        return .failure(.closedEarly(endpoint, reason: status == nil ? "no answer" : "answer cut short"))
    }

    /// `basePath + path`, then the query with every value percent-encoded.
    static func requestURI(basePath: String, path: String, query: [(name: String, value: String)]) -> String {
        var uri = basePath + path
        if !query.isEmpty {
            uri += "?" + query.map { "\(percentEncode($0.name))=\(percentEncode($0.value))" }.joined(separator: "&")
        }
        return uri
    }

    /// RFC 3986 percent-encoding of everything but the unreserved characters, so a value can
    /// hold `&`, `=`, `#`, `/`, spaces or non-ASCII without changing the query's meaning.
    static func percentEncode(_ text: String) -> String {
        var result = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                result.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = Array("0123456789ABCDEF".unicodeScalars)
                result.unicodeScalars.append("%")
                result.unicodeScalars.append(hex[Int(byte >> 4)])
                result.unicodeScalars.append(hex[Int(byte & 0x0F)])
            }
        }
        return result
    }

    /// The reason a connection could not be made, in the words an operator expects
    /// ("connection refused"), not NIO's error dump.
    static func describeConnectFailure(_ error: any Error) -> String {
        if let error = error as? NIOConnectionError {
            if let first = error.connectionErrors.first {
                return Self.describe(first.error)
            }
            if error.dnsAError != nil || error.dnsAAAAError != nil {
                return "cannot resolve host '\(error.host)'"
            }
            return "no address to connect to for '\(error.host)'"
        }
        return Self.describe(error)
    }

    private static func describe(_ error: any Error) -> String {
        if let error = error as? IOError {
            let text = String(cString: strerror(error.errnoCode))
            return text.prefix(1).lowercased() + text.dropFirst()
        }
        if let error = error as? ChannelError {
            switch error {
            case .connectTimeout(let amount):
                return "no connection within \(AdminFormat.seconds(.nanoseconds(amount.nanoseconds)))"
            case .ioOnClosedChannel, .alreadyClosed, .eof, .outputClosed, .inputClosed:
                return "connection closed"
            default:
                return "\(error)"
            }
        }
        return "\(error)"
    }
}

/// Set once, from the event loop, when the request deadline fires; read by the CLI's task.
private final class DeadlineFlag: Sendable {
    private let value = Mutex(false)
    var isSet: Bool { self.value.withLock { $0 } }
    func set() { self.value.withLock { $0 = true } }
}

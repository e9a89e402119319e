import Foundation
/// The gateway answered, and the answer means the operation did not happen (or not wholly):
/// exit code 1 with `message` on stderr.
struct AdminFailure: Error, Sendable, CustomStringConvertible {
    var message: String

    var description: String { self.message }
}

extension AdminHTTPResponse {
    /// The gateway's own `error` message when the body has one; otherwise the status and the
    /// start of the body, so that an answer from something else in between (a proxy's 502 page)
    /// still says what happened.
    var errorMessage: String {
        if let failure = try? AdminJSON.decoder.decode(AdminAnswer.Failure.self, from: self.body) {
            return failure.error
        }
        let text = String(decoding: self.body.prefix(200), as: UTF8.self)
            .split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
        return text.isEmpty ? "HTTP \(self.status)" : "HTTP \(self.status): \(text)"
    }

    /// Throws `AdminFailure` (exit 1) with `errorMessage` unless the status is 2xx.
    func requireSuccess() throws(AdminFailure) {
        guard self.isSuccess else { throw AdminFailure(message: self.errorMessage) }
    }

    /// Decodes a 2xx answer as `T`. A non-2xx answer is `AdminFailure` (exit 1); a 2xx answer
    /// that is not `T` means something other than the admin API answered (exit 2).
    /// `decoder`: the default turns the answer's snake_case keys into camelCase properties; an
    /// answer type the server itself encodes (with its snake_case property names) is read with a
    /// plain `JSONDecoder()`.
    func decoded<T: Decodable>(_ type: T.Type, from endpoint: AdminEndpoint, decoder: JSONDecoder = AdminJSON.decoder) throws -> T {
        try self.requireSuccess()
        return try self.decodedBody(type, from: endpoint, decoder: decoder)
    }

    /// Decodes the body as `T` whatever the status.
    func decodedBody<T: Decodable>(
        _ type: T.Type, from endpoint: AdminEndpoint, decoder: JSONDecoder = AdminJSON.decoder
    ) throws(AdminClientError) -> T {
        do {
            return try decoder.decode(T.self, from: self.body)
        } catch {
            throw .notAdminAPI(endpoint, reason: "HTTP \(self.status) with unexpected JSON: \(AdminJSON.describe(error))")
        }
    }
}

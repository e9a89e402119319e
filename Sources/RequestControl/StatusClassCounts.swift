/// Completed requests by the class of the status sent to the client.
///
/// `aborted` counts requests completed without a response (client gone, token dropped),
/// which an operator must tell apart from errors the gateway answered. Statuses below 200 count
/// as informational, statuses of 500 and above as server errors.
public struct StatusClassCounts: Sendable, Equatable {
    public var informational: Int
    public var success: Int
    public var redirection: Int
    public var clientError: Int
    public var serverError: Int
    public var aborted: Int

    public init(informational: Int = 0, success: Int = 0, redirection: Int = 0, clientError: Int = 0, serverError: Int = 0, aborted: Int = 0) {
        self.informational = informational
        self.success = success
        self.redirection = redirection
        self.clientError = clientError
        self.serverError = serverError
        self.aborted = aborted
    }

    /// All completed requests.
    public var sum: Int { informational + success + redirection + clientError + serverError + aborted }
}

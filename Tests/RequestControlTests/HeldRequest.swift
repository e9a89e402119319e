import Testing

@testable import RequestControl

/// An admitted request kept in a class, so a test can hold several in an array (an array
/// cannot hold the non-copyable ``RequestToken`` itself).
final class HeldRequest {
    private var token: RequestToken?

    /// Admits a request on `point`; a rejection is recorded as an issue (and nothing is held).
    init(_ point: ControlPoint, sourceLocation: SourceLocation = #_sourceLocation) {
        token = point.admit(sourceLocation: sourceLocation)
    }

    func complete(status: Int? = 200) {
        token.take()?.complete(status: status)
    }
}

extension ControlPoint {
    /// Admits `count` requests that must all be admitted (a rejection is a recorded issue).
    func hold(_ count: Int, sourceLocation: SourceLocation = #_sourceLocation) -> [HeldRequest] {
        (0..<count).map { _ in HeldRequest(self, sourceLocation: sourceLocation) }
    }
}

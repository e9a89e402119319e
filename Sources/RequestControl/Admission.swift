/// The answer of ``ControlPoint/beginRequest()``.
///
/// Non-copyable because `.run` carries the request's ``RequestToken``: the only way to get at
/// the token is to consume the admission, so it cannot be completed twice.
public enum Admission: ~Copyable {
    /// Serve the request; complete the token when done.
    case run(RequestToken)
    /// Refuse it (503 with Retry-After); the reason tells draining from overload.
    case rejected(RejectionReason)
}

/// Failures of the test support code, worded so that a failing test says what it waited for
/// and what it saw instead.
struct TestSupportError: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) {
        self.description = description
    }
}

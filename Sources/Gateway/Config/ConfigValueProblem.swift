/// Why a single value (a duration, an address) did not parse, without knowing where it came
/// from; `ConfigNode` adds the file, position and key path.
struct ConfigValueProblem: Error, Equatable {
    var message: String

    init(_ message: String) {
        self.message = message
    }
}

/// `access_log: {path, format}`: where the worker writes one line per request and in which form.
/// Absent from the configuration: no access log.
struct AccessLogConfig: Sendable, Equatable {
    /// A file (appended to, created if missing) or `-` for the worker's standard output.
    var path: String
    var format: AccessLogFormat = .json

    /// Where the lines go.
    var destination: Destination { path == "-" ? .standardOutput : .file(path) }

    enum Destination: Sendable, Equatable, CustomStringConvertible {
        case standardOutput
        case file(String)

        var description: String {
            switch self {
            case .standardOutput: "-"
            case .file(let path): path
            }
        }
    }
}

enum AccessLogFormat: String, Sendable, Equatable, CaseIterable {
    /// One JSON object per line, with every field (`null` for the ones that do not apply).
    case json
    /// Apache/nginx "combined", with the request id and the duration in milliseconds at the end.
    case combined
}

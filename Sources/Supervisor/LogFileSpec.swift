/// `process.log_file`: an instance's output also goes to a file, rotated by size.
///
/// The path may hold `$GATEWAY_INSTANCE`, `$GATEWAY_DEPLOYMENT` or `$PORT` (expanded per
/// instance like the command): `/var/log/shop/$GATEWAY_INSTANCE.log` gives each instance a file
/// of its own, a plain `/var/log/shop.log` one file for the whole deployment. Lines carry the
/// time and the instance name either way, so a shared file stays readable.
public struct LogFileSpec: Sendable, Equatable, Codable {
    public static let defaultMaxBytes = 10 << 20
    public static let defaultKeep = 5

    public var path: String
    /// The file is rotated before a line would take it past this size.
    public var maxBytes: Int
    /// Rotated files kept: `PATH.1` (the newest) to `PATH.keep`; 0 keeps none (the file starts
    /// over).
    public var keep: Int

    public init(path: String, maxBytes: Int = LogFileSpec.defaultMaxBytes, keep: Int = LogFileSpec.defaultKeep) {
        self.path = path
        self.maxBytes = maxBytes
        self.keep = keep
    }
}

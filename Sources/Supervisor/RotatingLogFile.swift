import Glibc

/// One log file, written line by line and rotated by size: `PATH` is renamed to `PATH.1`,
/// `PATH.1` to `PATH.2` and so on up to `PATH.keep`, whose old content is dropped.
///
/// Not thread-safe: ``OutputLog`` uses each from one serial queue. The file is opened lazily
/// and again after an error, so a log directory that appears later (or a full disk that gets
/// room) is picked up without a restart.
final class RotatingLogFile {
    let spec: LogFileSpec
    private var descriptor: Int32 = -1
    private(set) var size = 0

    init(spec: LogFileSpec) {
        self.spec = spec
    }

    deinit {
        if descriptor >= 0 { Glibc.close(descriptor) }
    }

    /// Writes `bytes` (one or more whole lines), rotating first if they would take the file past
    /// its size. Returns the errno of a failure, nil when written.
    func write(_ bytes: [UInt8]) -> Int32? {
        if descriptor >= 0, size > 0, size + bytes.count > spec.maxBytes {
            rotate()
        }
        if descriptor < 0, let error = open() { return error }
        if let code = DescriptorWriter.writeAll(bytes, to: descriptor) {
            Glibc.close(descriptor)
            descriptor = -1
            return code
        }
        size += bytes.count
        return nil
    }

    /// Shifts the rotated files up by one and starts an empty `PATH`.
    func rotate() {
        if descriptor >= 0 {
            Glibc.close(descriptor)
            descriptor = -1
        }
        if spec.keep == 0 {
            unlink(spec.path)
        } else {
            var index = spec.keep - 1
            while index >= 1 {
                rename("\(spec.path).\(index)", "\(spec.path).\(index + 1)")
                index -= 1
            }
            rename(spec.path, "\(spec.path).1")
        }
        size = 0
    }

    private func open(rotatingIfFull: Bool = true) -> Int32? {
        let fd = Glibc.open(spec.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return errno }
        var info = stat()
        size = fstat(fd, &info) == 0 ? Int(info.st_size) : 0
        descriptor = fd
        // A file already over the size (a smaller max after a reload): rotate now.
        if rotatingIfFull, size > 0, size >= spec.maxBytes {
            rotate()
            return open(rotatingIfFull: false)
        }
        return nil
    }
}

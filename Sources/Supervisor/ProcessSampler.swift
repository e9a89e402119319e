import Glibc

/// Reads a process's memory and CPU use from procfs.
///
/// Direct reads of two small files rather than a library: no dependency, and it costs two
/// syscalls per file, cheap enough to sample every instance every few seconds.
public enum ProcessSampler {
    /// `nil` when the process is gone or a zombie. For a spawned child use
    /// ``SpawnedProcess/sample()``, which cannot hit a recycled pid.
    public static func sample(pid: Int32) -> ProcessSample? {
        guard pid > 0,
              let stat = readSmallFile("/proc/\(pid)/stat"),
              let statm = readSmallFile("/proc/\(pid)/statm")
        else { return nil }
        // The command name (field 2) is in parentheses and may hold spaces or ')', so the fields
        // are counted after the last ')'. From there: state is field 3, utime 14, stime 15.
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, fields[0] != "Z",
              let userTicks = Double(fields[11]), let systemTicks = Double(fields[12])
        else { return nil }
        // statm: size resident shared text lib data dt, in pages.
        let pages = statm.split(separator: " ")
        guard pages.count > 1, let residentPages = Int(pages[1]) else { return nil }
        let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
        let pageSize = sysconf(Int32(_SC_PAGESIZE))
        return ProcessSample(
            rssBytes: residentPages * pageSize,
            cpuSeconds: (userTicks + systemTicks) / ticksPerSecond
        )
    }

    private static func readSmallFile(_ path: String) -> String? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        return withUnsafeTemporaryAllocation(byteCount: 4096, alignment: 1) { buffer -> String? in
            var length = 0
            while length < buffer.count {
                let count = read(descriptor, buffer.baseAddress! + length, buffer.count - length)
                if count > 0 {
                    length += count
                } else if count < 0 && errno == EINTR {
                    continue
                } else if count < 0 {
                    return nil
                } else {
                    break
                }
            }
            return String(decoding: UnsafeRawBufferPointer(rebasing: buffer[..<length]), as: UTF8.self)
        }
    }
}

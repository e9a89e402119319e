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

    /// Every process's parent and process group, read from `/proc/*/stat` once, so that the
    /// table's instances are each summed from one consistent listing.
    public struct ProcessList: Sendable {
        struct Entry: Sendable {
            var parent: Int32
            var group: Int32
        }

        let entries: [Int32: Entry]
        /// Built once per listing: the table asks for the tree of every instance.
        private let children: [Int32: [Int32]]
        private let groups: [Int32: [Int32]]

        init(entries: [Int32: Entry]) {
            self.entries = entries
            var children: [Int32: [Int32]] = [:]
            var groups: [Int32: [Int32]] = [:]
            for (pid, entry) in entries {
                children[entry.parent, default: []].append(pid)
                groups[entry.group, default: []].append(pid)
            }
            self.children = children
            self.groups = groups
        }

        /// The pids of `leader`'s tree: itself, its descendants (by parent), and whatever else
        /// is in its process group (a child that was orphaned and re-parented stays there).
        public func tree(of leader: Int32) -> [Int32] {
            var members: Set<Int32> = [leader]
            var pending = [leader]
            while let next = pending.popLast() {
                for child in children[next] ?? [] where members.insert(child).inserted {
                    pending.append(child)
                }
            }
            for pid in groups[leader] ?? [] { members.insert(pid) }
            return members.sorted()
        }
    }

    /// The current processes of the host (those this process may see).
    public static func processList() -> ProcessList {
        var entries: [Int32: ProcessList.Entry] = [:]
        guard let directory = opendir("/proc") else { return ProcessList(entries: [:]) }
        defer { closedir(directory) }
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard let pid = Int32(name), let stat = readSmallFile("/proc/\(pid)/stat"),
                  let close = stat.lastIndex(of: ")")
            else { continue }
            // After the command name: state, ppid, pgrp.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 2, let parent = Int32(fields[1]), let group = Int32(fields[2]) else { continue }
            entries[pid] = ProcessList.Entry(parent: parent, group: group)
        }
        return ProcessList(entries: entries)
    }

    /// Memory and CPU of `leader` and every process of its tree (``ProcessList/tree(of:)``),
    /// summed: a gunicorn master and its workers. `nil` when the leader itself is gone. The CPU
    /// time of members that exited drops out of the sum; a rate computed over it is clamped at 0.
    public static func sampleTree(leader: Int32, in list: ProcessList) -> ProcessSample? {
        guard var total = sample(pid: leader) else { return nil }
        for pid in list.tree(of: leader) where pid != leader {
            guard let member = sample(pid: pid) else { continue }
            total.rssBytes += member.rssBytes
            total.cpuSeconds += member.cpuSeconds
        }
        return total
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

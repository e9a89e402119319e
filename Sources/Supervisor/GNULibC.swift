import Glibc

/// glibc functions that Swift's `Glibc` module does not import, resolved at run time.
///
/// They are declared only under `_GNU_SOURCE`, which the module map does not define, and the
/// package layout forbids adding a C shim target for them. Each one is an ordinary exported,
/// non-variadic function, so calling it through a `@convention(c)` pointer of the same prototype is
/// exactly what a C caller does. A missing symbol (an older glibc) yields `nil` and the caller
/// falls back or reports ENOSYS.
enum GNULibC {
    /// `int pipe2(int fds[2], int flags)` (glibc 2.9): creates both ends close-on-exec atomically,
    /// so a concurrent spawn on another thread cannot inherit them.
    static let pipe2: (@convention(c) (UnsafeMutablePointer<Int32>?, Int32) -> Int32)? =
        symbol("pipe2")

    /// `int posix_spawn_file_actions_addchdir_np(posix_spawn_file_actions_t *, const char *)`
    /// (glibc 2.29): the working directory, changed in the child before exec.
    static let addChdir: (@convention(c) (
        UnsafeMutablePointer<posix_spawn_file_actions_t>?, UnsafePointer<CChar>?
    ) -> Int32)? = symbol("posix_spawn_file_actions_addchdir_np")

    /// `int posix_spawn_file_actions_addclosefrom_np(posix_spawn_file_actions_t *, int)`
    /// (glibc 2.34): closes every descriptor from 3 up in the child, so a backend never inherits
    /// a listening socket or a pipe end that some other code forgot to mark close-on-exec.
    static let addCloseFrom: (@convention(c) (
        UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32
    ) -> Int32)? = symbol("posix_spawn_file_actions_addclosefrom_np")

    /// `int pidfd_open(pid_t pid, unsigned int flags)` (glibc 2.36, Linux 5.3): a descriptor that
    /// polls readable once the process has exited, so one `poll` can wait for output and exit
    /// together. Close-on-exec always.
    static let pidfdOpen: (@convention(c) (pid_t, UInt32) -> Int32)? = symbol("pidfd_open")

    private static func symbol<Function>(_ name: String) -> Function? {
        // A nil handle is RTLD_DEFAULT: search the process's global symbol scope.
        guard let address = dlsym(nil, name) else { return nil }
        return unsafeBitCast(address, to: Function.self)
    }

    /// A pipe whose both ends are close-on-exec. The caller dup2s the child's end onto 0/1/2 in
    /// the spawn file actions, which clears the flag on the duplicate only.
    static func closeOnExecPipe() -> (read: Int32, write: Int32)? {
        var fds: [Int32] = [-1, -1]
        let result = fds.withUnsafeMutableBufferPointer { buffer -> Int32 in
            if let pipe2 {
                return pipe2(buffer.baseAddress, O_CLOEXEC)
            }
            // Fallback without pipe2: a window in which another thread's spawn could inherit the
            // ends; our own spawns close descriptors >= 3 anyway.
            guard pipe(buffer.baseAddress) == 0 else { return -1 }
            _ = fcntl(buffer[0], F_SETFD, FD_CLOEXEC)
            _ = fcntl(buffer[1], F_SETFD, FD_CLOEXEC)
            return 0
        }
        return result == 0 ? (fds[0], fds[1]) : nil
    }
}

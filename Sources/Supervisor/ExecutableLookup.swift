import Glibc

/// Finds the file a command name runs, the way `execvp` would, before anything is spawned.
///
/// Doing it in the parent turns "command not found" into a ``SpawnError`` at spawn time, also
/// when a launcher execs the command later in the child (where the failure could only be an exit
/// status 127). The rules match glibc's `execvp` so both agree: a name with a `/` is used as is
/// (relative to the child's working directory), otherwise each `PATH` entry is tried in order,
/// an empty entry meaning the working directory, and `PATH` unset meaning `/bin:/usr/bin`.
enum ExecutableLookup {
    /// The absolute path of the executable, or the errno `execvp` would fail with (ENOENT, or
    /// EACCES when only non-executable candidates exist).
    static func resolve(
        _ command: String,
        searchPath: String?,
        workingDirectory: String?
    ) -> Result<String, Errno> {
        guard !command.isEmpty else { return .failure(Errno(ENOENT)) }
        let base = workingDirectory ?? currentDirectory()
        if command.contains("/") {
            let candidate = absolute(command, base: base)
            return check(candidate).map { _ in candidate }
        }
        var sawInaccessible = false
        let directories = (searchPath ?? "/bin:/usr/bin")
            .split(separator: ":", omittingEmptySubsequences: false)
        for directory in directories {
            let directory = directory.isEmpty ? "." : String(directory)
            let candidate = absolute(directory, base: base) + "/" + command
            switch check(candidate) {
            case .success:
                return .success(candidate)
            case .failure(let error) where error.code == EACCES:
                sawInaccessible = true
            case .failure:
                continue
            }
        }
        return .failure(Errno(sawInaccessible ? EACCES : ENOENT))
    }

    /// An errno value as an `Error`.
    struct Errno: Error, Equatable {
        var code: Int32
        init(_ code: Int32) { self.code = code }
    }

    private static func check(_ path: String) -> Result<Void, Errno> {
        var info = stat()
        guard stat(path, &info) == 0 else { return .failure(Errno(errno)) }
        // execve refuses directories and other non-regular files with EACCES.
        guard info.st_mode & S_IFMT == S_IFREG, access(path, X_OK) == 0 else {
            return .failure(Errno(EACCES))
        }
        return .success(())
    }

    private static func absolute(_ path: String, base: String) -> String {
        if path.hasPrefix("/") { return path }
        return base.hasSuffix("/") ? base + path : base + "/" + path
    }

    static func currentDirectory() -> String {
        guard let cwd = getcwd(nil, 0) else { return "." }
        defer { free(cwd) }
        return String(cString: cwd)
    }

    /// Whether `path` names a directory we could change into, checked before spawning so that a
    /// bad `cwd` is reported as such and not as a missing command (posix_spawn says ENOENT for
    /// both).
    static func checkDirectory(_ path: String) -> Errno? {
        var info = stat()
        guard stat(path, &info) == 0 else { return Errno(errno) }
        guard info.st_mode & S_IFMT == S_IFDIR else { return Errno(ENOTDIR) }
        guard access(path, X_OK) == 0 else { return Errno(errno) }
        return nil
    }
}

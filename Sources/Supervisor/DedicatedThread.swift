import Glibc

/// Starts a detached OS thread for one blocking job (spawn-then-waitpid, a watchdog reaper).
///
/// A plain pthread, not a Dispatch or Swift-concurrency worker: the job blocks in `waitpid` for
/// as long as the child lives, which would starve a shared pool, and PR_SET_PDEATHSIG ties the
/// child's life to the very thread that created it, so that thread must be ours alone.
enum DedicatedThread {
    private final class Job {
        let body: @Sendable () -> Void
        init(body: @escaping @Sendable () -> Void) { self.body = body }
    }

    /// Returns 0, or the `pthread_create` error (EAGAIN when the thread limit is reached).
    static func start(_ body: @escaping @Sendable () -> Void) -> Int32 {
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        // The job is small Swift code around a blocking syscall; 512 KiB is ample and keeps a few
        // hundred supervised processes cheap in address space.
        pthread_attr_setstacksize(&attributes, 512 * 1024)

        let job = Unmanaged.passRetained(Job(body: body)).toOpaque()
        var thread = pthread_t()
        let result = pthread_create(&thread, &attributes, { context in
            let job = Unmanaged<Job>.fromOpaque(context!).takeRetainedValue()
            job.body()
            return nil
        }, job)
        if result != 0 {
            Unmanaged<Job>.fromOpaque(job).release()
        }
        return result
    }
}

import Glibc

/// `prctl(2)` for the two options the supervisor needs: the parent-death signal (`_launch` sets
/// it in each instance) and the child subreaper (the keeper becomes one).
///
/// Swift does not import `prctl` because it is variadic in C (`int prctl(int option, ...)`), so it
/// is resolved with `dlsym` and called through a non-variadic pointer type with four `unsigned
/// long` arguments after the option. That is sound on the two Linux ABIs we run on:
/// - glibc's `prctl` takes the four arguments after `option` with `va_arg(ap, unsigned long)` and
///   passes them to the syscall (older glibc: a syscall stub that reads the registers directly);
///   it never reads a floating-point argument.
/// - x86_64 System V: integer arguments of a variadic call travel in the same registers as those
///   of a normal call (rdi, rsi, rdx, rcx, r8). The only extra is %al, an upper bound on the
///   vector registers used, which the callee's prologue only uses to decide whether to spill
///   xmm0-7 into the register save area; with a non-zero garbage value it spills needlessly,
///   and va_arg for `unsigned long` reads only the general-register save area.
/// - aarch64 Linux (AAPCS64; not Apple's arm64, which puts variadic arguments on the stack):
///   variadic integer arguments go in x0-x7 exactly like named ones, and the callee's va_start
///   saves x0-x7, so `va_arg` finds them where a normal call put them.
/// UInt is 64 bits there, the width of `unsigned long`, so no argument is truncated or widened.
public enum ProcessControl {
    private typealias Prctl = @convention(c) (Int32, UInt, UInt, UInt, UInt) -> Int32
    /// From <linux/prctl.h>, which the Glibc module does not import.
    private static let setPDeathSig: Int32 = 1
    private static let setChildSubreaper: Int32 = 36

    /// `prctl(PR_SET_PDEATHSIG, signal)`: this thread's death sends `signal` to the process.
    public static func setParentDeathSignal(_ signal: Int32) -> Bool {
        call(setPDeathSig, UInt(signal))
    }

    /// `prctl(PR_SET_CHILD_SUBREAPER, 1)`: orphaned descendants are reparented to this process
    /// instead of init.
    public static func becomeChildSubreaper() -> Bool {
        call(setChildSubreaper, 1)
    }

    private static func call(_ option: Int32, _ argument: UInt) -> Bool {
        // A nil handle is RTLD_DEFAULT.
        guard let symbol = dlsym(nil, "prctl") else {
            errno = ENOSYS
            return false
        }
        let prctl = unsafeBitCast(symbol, to: Prctl.self)
        return prctl(option, argument, 0, 0, 0) == 0
    }
}

//! Threads inside a PostgreSQL process. They never call PostgreSQL, and they must not take
//! its signals either: a signal handler of PostgreSQL's run on a helper thread would act on
//! the wrong stack. Every thread is therefore started with all signals blocked, so signals
//! are always delivered to the main thread.

/// Runs `start` (which starts threads: they inherit the mask) with every signal blocked in
/// the calling thread, then restores the calling thread's mask. Signals arriving meanwhile
/// stay pending and are handled right after.
pub fn with_signals_blocked<R>(start: impl FnOnce() -> R) -> R {
    // SAFETY: sigset_t is plain data; pthread_sigmask changes only this thread's mask, and
    // the old mask is put back before returning.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let result = start();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        result
    }
}

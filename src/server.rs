//! The few server functions this extension calls that pgrx 0.18.1's generated bindings leave
//! out (their headers are not in its list). Signatures as in PostgreSQL 14–18.

use std::ffi::c_int;

/// `STATEMENT_TIMEOUT` of `enum TimeoutId` (utils/timeout.h): the fourth predefined reason
/// in every supported major.
const STATEMENT_TIMEOUT: c_int = 3;

unsafe extern "C-unwind" {
    fn PostmasterIsAliveInternal() -> bool;
    fn enable_timeout_after(id: c_int, delay_ms: c_int);
}

/// Whether the postmaster is still alive (a read on its death-watch pipe).
pub(crate) fn postmaster_is_alive() -> bool {
    // SAFETY: no arguments, no memory effects; valid in any server process.
    unsafe { PostmasterIsAliveInternal() }
}

/// Arms this process's statement timeout: after `ms`, the next interrupt check raises
/// "canceling statement due to statement timeout". A background worker's SPI queries arm
/// none by themselves (`statement_timeout` is applied by the client protocol's loop).
pub(crate) fn arm_statement_timeout(ms: c_int) {
    // SAFETY: InitPostgres registered STATEMENT_TIMEOUT's handler in every process connected
    // to a database; callers are.
    unsafe { enable_timeout_after(STATEMENT_TIMEOUT, ms) }
}

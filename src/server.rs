//! The few server functions this extension calls that pgrx 0.18.1's generated bindings leave
//! out (their headers are not in its list). Signatures as in PostgreSQL 14–18.

use std::ffi::{c_int, CStr};

use pgrx::pg_sys;
use pgrx::PgLogLevel;

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

/// Sets parameter `name` to `value` for the rest of the current transaction, as `SET LOCAL`
/// does, but without a query (nothing parsed, planned or resolved by name). An invalid value
/// is an ERROR.
pub(crate) fn set_local(name: &CStr, value: &CStr) {
    // SAFETY: NUL-terminated strings that outlive the call; callers are inside a transaction;
    // `changeVal` applies the value with the transaction's scope (GUC_ACTION_LOCAL).
    unsafe {
        pg_sys::set_config_option(
            name.as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_LOCAL,
            true,
            PgLogLevel::ERROR as i32,
            false,
        );
    }
}

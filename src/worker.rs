//! The background workers: one launcher, and a short-lived collector per database visit.
//!
//! At most two background-worker slots are ever in use (the launcher and one collector), so
//! parallel query and logical replication keep theirs however many databases report.

pub(crate) mod collector;
mod databases;
pub(crate) mod launcher;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pgrx::bgworkers::{BackgroundWorkerBuilder, BgWorkerStartTime};
use pgrx::prelude::*;

/// `backend_type` of the launcher in pg_stat_activity.
pub(crate) const LAUNCHER_TYPE: &str = "timescaledb_telemetry launcher";
/// `backend_type` of a collector.
pub(crate) const COLLECTOR_TYPE: &str = "timescaledb_telemetry collector";

/// Whether this process's library was loaded by shared_preload_libraries (inherited by
/// every backend through fork), i.e. whether a launcher exists to be woken.
static PRELOADED: AtomicBool = AtomicBool::new(false);

/// Registers the launcher. Called from `_PG_init` while shared_preload_libraries is processed.
pub(crate) fn register_launcher() {
    PRELOADED.store(true, Ordering::SeqCst);
    BackgroundWorkerBuilder::new(LAUNCHER_TYPE)
        .set_type(LAUNCHER_TYPE)
        .set_library("timescaledb_telemetry")
        .set_function("timescaledb_telemetry_launcher_main")
        .enable_spi_access()
        // Only on a primary: a standby is in recovery and never finishes it.
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(Some(Duration::from_secs(10)))
        .load();
}

/// Tells the launcher, once the current transaction commits, to look for databases that
/// have just got the extension. Run by CREATE EXTENSION, so a new database reports within
/// seconds, without a restart. Does nothing where the library is not preloaded.
// Declared in SQL below, in the catalog schema rather than the extension's.
#[pg_extern(sql = false)]
fn wake_telemetry_launcher() {
    if !PRELOADED.load(Ordering::SeqCst) {
        return;
    }
    let pid = Spi::get_one_with_args::<i32>(
        "SELECT pid FROM pg_catalog.pg_stat_activity WHERE backend_type = $1 LIMIT 1",
        &[LAUNCHER_TYPE.into()],
    );
    if let Ok(Some(pid)) = pid {
        // At commit, not now: before it, the launcher's collector would not see the extension.
        pgrx::register_xact_callback(pgrx::PgXactCallbackEvent::Commit, move || {
            // SAFETY: kill(2) has no memory effects. The pid was the launcher's a moment ago;
            // should it have exited since, the signal goes nowhere (ESRCH) — or, if its pid
            // were reused by another server process in that instant, SIGUSR2 is one that
            // process either ignores or handles (a known, accepted window).
            unsafe { libc::kill(pid, libc::SIGUSR2) };
        });
    }
}

extension_sql!(
    r#"
CREATE FUNCTION _timescaledb_catalog.wake_telemetry_launcher() RETURNS void
    LANGUAGE c AS 'MODULE_PATHNAME', 'wake_telemetry_launcher_wrapper';
REVOKE ALL ON FUNCTION _timescaledb_catalog.wake_telemetry_launcher() FROM PUBLIC;
SELECT _timescaledb_catalog.wake_telemetry_launcher();
"#,
    name = "wake_launcher_on_create",
    finalize
);

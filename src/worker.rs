//! The background workers: one launcher, and a short-lived collector per database visit.
//!
//! At most two background-worker slots are ever in use (the launcher and one collector), so
//! parallel query and logical replication keep theirs however many databases report.

pub(crate) mod collector;
mod databases;
mod dynamic;
pub(crate) mod launcher;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use pgrx::bgworkers::{BackgroundWorkerBuilder, BgWorkerStartTime};
use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PGRXSharedMemory, PgAtomic, PgLwLock};

use crate::fleet::{WakeSet, WakeUp};

/// `backend_type` of the launcher in pg_stat_activity.
pub(crate) const LAUNCHER_TYPE: &str = "timescaledb_telemetry launcher";
/// `backend_type` of a collector.
pub(crate) const COLLECTOR_TYPE: &str = "timescaledb_telemetry collector";

/// Whether this process's library was loaded by shared_preload_libraries (inherited by
/// every backend through fork), i.e. whether the shared memory below and a launcher exist.
static PRELOADED: AtomicBool = AtomicBool::new(false);

/// In shared memory: the launcher's PGPROC number plus one (0: no launcher running).
// SAFETY (both): the names are ours alone.
static LAUNCHER_PROC: PgAtomic<AtomicU32> = unsafe { PgAtomic::new(c"timescaledb_telemetry launcher") };
/// In shared memory: the databases where CREATE EXTENSION committed since the launcher last
/// looked (it empties the set when it does).
// SAFETY: the name is ours alone.
static WAKE_UPS: PgLwLock<SharedWakeSet> = unsafe { PgLwLock::new(c"timescaledb_telemetry wake-ups") };

/// `fleet::WakeSet` as shared memory (a type of this crate, as pgrx's trait requires).
#[repr(transparent)]
#[derive(Clone, Copy, Default)]
struct SharedWakeSet(WakeSet);
// SAFETY: plain data (integers and a bool, no pointers), valid as all zeros and at any address.
unsafe impl PGRXSharedMemory for SharedWakeSet {}

/// Registers the shared memory and the launcher. Called from `_PG_init` while
/// shared_preload_libraries is processed.
pub(crate) fn register_launcher() {
    PRELOADED.store(true, Ordering::SeqCst);
    pg_shmem_init!(LAUNCHER_PROC = AtomicU32::new(0));
    pg_shmem_init!(WAKE_UPS);
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

/// This process's PGPROC number.
fn my_proc_number() -> u32 {
    // SAFETY: MyProc is this process's own entry of ProcGlobal->allProcs, set before any
    // extension code runs; the offset is computed without dereferencing anything else.
    unsafe { pg_sys::MyProc.offset_from((*pg_sys::ProcGlobal).allProcs) as u32 }
}

/// Called by the launcher once it runs: from now on CREATE EXTENSION wakes it. Forgotten
/// again when the launcher exits.
pub(crate) fn launcher_started() {
    #[pg_guard]
    unsafe extern "C-unwind" fn forget(_code: i32, _arg: pg_sys::Datum) {
        let me = my_proc_number() + 1;
        let _ = LAUNCHER_PROC.get().compare_exchange(me, 0, Ordering::SeqCst, Ordering::SeqCst);
    }
    LAUNCHER_PROC.get().store(my_proc_number() + 1, Ordering::SeqCst);
    // SAFETY: registers a callback that only touches our shared atomic.
    unsafe { pg_sys::before_shmem_exit(Some(forget), pg_sys::Datum::from(0)) };
}

/// For the launcher: the databases where CREATE EXTENSION committed since it last asked.
pub(crate) fn take_wake_up() -> Option<WakeUp> {
    WAKE_UPS.exclusive().0.take()
}

/// Records database `db` in the wake-ups and sets the launcher's latch. No signal and no
/// pid: should the launcher have exited and its PGPROC gone to another process, that process
/// merely wakes once for nothing, which every latch user must tolerate.
fn wake_launcher(db: u32) {
    WAKE_UPS.exclusive().0.add(db);
    let n = LAUNCHER_PROC.get().load(Ordering::SeqCst);
    // SAFETY: ProcGlobal->allProcs has allProcCount entries for the server's lifetime, and
    // SetLatch may be called on any process's latch.
    unsafe {
        let global = pg_sys::ProcGlobal;
        if n == 0 || n > (*global).allProcCount {
            return;
        }
        let proc = (*global).allProcs.add(n as usize - 1);
        pg_sys::SetLatch(&raw mut (*proc).procLatch);
    }
}

/// Tells the launcher, once the current transaction commits, to look for databases that
/// have just got the extension. Run by CREATE EXTENSION, so a new database reports within
/// seconds, without a restart. Does nothing where the library is not preloaded (there is
/// no launcher, nor the shared memory to reach one).
// Declared in SQL below, in the catalog schema rather than the extension's.
#[pg_extern(sql = false)]
fn wake_telemetry_launcher() {
    if !PRELOADED.load(Ordering::SeqCst) {
        return;
    }
    // SAFETY: reading this backend's database oid, set at connection.
    let db = unsafe { pg_sys::MyDatabaseId }.to_u32();
    // At commit, not now: before it, the launcher's collector would not see the extension.
    pgrx::register_xact_callback(pgrx::PgXactCallbackEvent::Commit, move || wake_launcher(db));
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

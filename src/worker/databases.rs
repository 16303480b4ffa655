//! The databases the launcher may visit, read from the shared catalog pg_database with a
//! heap scan: the launcher is connected to no database, so SQL is not available to it
//! (autovacuum's launcher lists databases the same way).

use pgrx::bgworkers::BackgroundWorker;
use pgrx::pg_sys;

/// A database a collector may connect to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Database {
    pub oid: u32,
    pub name: String,
}

/// `datconnlimit` of a database that a DROP DATABASE left half-dropped.
const DATCONNLIMIT_INVALID_DB: i32 = -2;

/// Databases that accept connections and are not templates (nor half-dropped).
pub(crate) fn connectable() -> Vec<Database> {
    BackgroundWorker::transaction(|| {
        let mut found = Vec::new();
        // SAFETY: inside a transaction; the relation is opened, scanned and closed here, and
        // each tuple's fixed-size part is read as FormData_pg_database while the scan holds
        // its buffer pin.
        unsafe {
            let rel = pg_sys::table_open(pg_sys::DatabaseRelationId, pg_sys::AccessShareLock as _);
            let scan = pg_sys::table_beginscan_catalog(rel, 0, std::ptr::null_mut());
            loop {
                let tuple = pg_sys::heap_getnext(scan, pg_sys::ScanDirection::ForwardScanDirection);
                if tuple.is_null() {
                    break;
                }
                let data = (*tuple).t_data;
                let form = (data as *const u8).add((*data).t_hoff as usize) as *const pg_sys::FormData_pg_database;
                let form = &*form;
                if form.datistemplate || !form.datallowconn || form.datconnlimit == DATCONNLIMIT_INVALID_DB {
                    continue;
                }
                let name = std::ffi::CStr::from_ptr(form.datname.data.as_ptr()).to_string_lossy().into_owned();
                found.push(Database { oid: form.oid.to_u32(), name });
            }
            pg_sys::table_endscan(scan);
            pg_sys::table_close(rel, pg_sys::AccessShareLock as _);
        }
        found
    })
}

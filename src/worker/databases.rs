//! The databases the launcher may visit, read from the shared catalog pg_database: the
//! launcher is connected to no database, so SQL is not available to it.

use pgrx::bgworkers::BackgroundWorker;
use pgrx::pg_sys;

use crate::catalog_scan::{name_str, scan};

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
        // SAFETY: FormData_pg_database is pg_database's row type; only fixed fields are read.
        unsafe {
            scan(pg_sys::DatabaseRelationId, |db: &pg_sys::FormData_pg_database| {
                let usable =
                    !db.datistemplate && db.datallowconn && db.datconnlimit != DATCONNLIMIT_INVALID_DB;
                usable.then(|| Database { oid: db.oid.to_u32(), name: name_str(&db.datname) })
            })
        }
    })
}

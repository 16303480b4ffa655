//! timescaledb_telemetry: TimescaleDB's telemetry and version check as a standalone extension.
//!
//! Vocabulary:
//! - a **report** is the anonymous JSON document describing one database (`report`);
//! - the **endpoint** is the URL reports are POSTed to (`timescaledb_telemetry.endpoint`);
//! - the **launcher** is the one background worker, connected to no database, that keeps the
//!   schedule and does the HTTP (`worker::launcher`);
//! - **function usage** is how often a database's queries use built-in functions and those of
//!   related extensions, counted by a planner hook in shared memory (`functions`);
//! - a **collector** is a short-lived worker connected to one database that gathers that
//!   database's report and the telemetry level in effect there, hands both over, and exits
//!   (`worker::collector`).

use pgrx::prelude::*;

// The pure modules live in core/ (no pgrx, unit-tested once for every major); the glue names
// them as if they were its own.
pub(crate) use timescaledb_telemetry_core::{
    advisory, fleet, handover, http, level, session, signature, state, threads, version,
};

mod catalog_scan;
mod encoding;
mod functions;
mod report;
mod server;
mod settings;
mod status;
mod worker;

pg_module_magic!();

/// Registers the settings. Runs in every process that loads the library, including the
/// postmaster with `shared_preload_libraries`, so it starts no thread and opens nothing.
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    settings::register();
    // SAFETY: plain reads of two flags PostgreSQL sets before loading libraries.
    let (preloading, binary_upgrade) =
        unsafe { (pg_sys::process_shared_preload_libraries_in_progress, pg_sys::IsBinaryUpgrade) };
    // No worker during pg_upgrade: the cluster is not in service.
    if preloading && !binary_upgrade {
        worker::register_launcher();
        functions::register(settings::max_tracked_functions());
    }
}

extension_sql_file!("../sql/catalog.sql", name = "catalog", bootstrap);

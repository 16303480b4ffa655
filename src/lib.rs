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

mod catalog_scan;
mod encoding;
mod fleet;
mod functions;
mod handover;
mod http;
mod level;
mod log_budget;
mod report;
mod schedule;
mod server;
mod session;
mod settings;
mod state;
mod status;
mod threads;
mod version;
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

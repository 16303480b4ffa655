//! timescaledb_telemetry: TimescaleDB's telemetry and version check as a standalone extension.
//!
//! Vocabulary:
//! - a **report** is the anonymous JSON document describing one database (`report`);
//! - the **endpoint** is the URL reports are POSTed to (`timescaledb_telemetry.endpoint`);
//! - the **launcher** is the one background worker, connected to no database, that keeps the
//!   schedule and does the HTTP (`worker::launcher`);
//! - a **collector** is a short-lived worker connected to one database that gathers that
//!   database's report and the telemetry level in effect there, hands both over, and exits
//!   (`worker::collector`).

use pgrx::prelude::*;

mod report;
mod settings;

pg_module_magic!();

/// Registers the settings. Runs in every process that loads the library, including the
/// postmaster with `shared_preload_libraries`, so it starts no thread and opens nothing.
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    settings::register();
}

extension_sql_file!("../sql/catalog.sql", name = "catalog", bootstrap);

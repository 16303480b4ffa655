//! `get_telemetry_status()`: what the worker last did for the current database, read from
//! the worker's state file (so it survives restarts and needs no write by the worker into
//! the database).

use std::path::Path;

use pgrx::datetime::to_timestamp;
use pgrx::prelude::*;

use crate::settings::Settings;
use crate::state::State;

/// One row for the current database.
#[allow(clippy::type_complexity)] // pgrx needs the columns spelled out in the signature Before the worker's first visit (or without the
/// library in shared_preload_libraries) everything but the endpoint is NULL.
#[pg_extern(volatile)]
fn get_telemetry_status() -> TableIterator<
    'static,
    (
        name!(level, Option<String>),
        name!(endpoint, Option<String>),
        name!(last_attempt, Option<TimestampWithTimeZone>),
        name!(last_success, Option<TimestampWithTimeZone>),
        name!(last_status, Option<i32>),
        name!(last_error, Option<String>),
        name!(latest_version, Option<String>),
        name!(next_attempt, Option<TimestampWithTimeZone>),
    ),
> {
    // Trust: not SECURITY DEFINER (runs as its caller, who was granted EXECUTE), and it runs
    // no query: nothing to resolve, nothing counted as the database's function usage.
    // SAFETY: reading this backend's database oid, set at connection.
    let db_oid = unsafe { pg_sys::MyDatabaseId }.to_u32();
    // A backend's working directory is the data directory, where the launcher keeps its state.
    let status =
        State::load(Path::new(".")).unwrap_or_default().databases.remove(&db_oid).unwrap_or_default();
    let time = |t: Option<f64>| t.map(to_timestamp);
    TableIterator::once((
        status.level,
        status.endpoint.or_else(|| Some(Settings::current().endpoint)),
        time(status.last_attempt),
        time(status.last_success),
        status.last_status.map(i32::from),
        status.last_error,
        status.latest_version,
        time(status.next_attempt),
    ))
}

extension_sql!(
    "REVOKE ALL ON FUNCTION get_telemetry_status() FROM PUBLIC;",
    name = "status_is_for_superusers",
    requires = [get_telemetry_status],
);

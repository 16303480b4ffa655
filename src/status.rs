//! `get_telemetry_status()`: what the worker last did for the current database, read from
//! the worker's state file (so it survives restarts and needs no write by the worker into
//! the database); and from the same places what the version check found
//! (`get_telemetry_advisories()`) and what was sent (`get_telemetry_history()`,
//! `get_telemetry_last_sent()`).
//!
//! Trust: none is SECURITY DEFINER (each runs as its caller, who was granted EXECUTE), and
//! none runs a query.

use std::path::Path;

use pgrx::datetime::to_timestamp;
use pgrx::prelude::*;

use crate::report::model::MAX_REPORT_BYTES;
use crate::report::ReportJsonb;
use crate::settings::Settings;
use crate::state::{sent_path, DbStatus, State};

/// The current database's oid.
fn my_database() -> u32 {
    // SAFETY: reading this backend's database oid, set at connection.
    unsafe { pg_sys::MyDatabaseId }.to_u32()
}

/// The worker's saved status of the current database (empty before its first visit). A
/// backend's working directory is the data directory, where the launcher keeps its state.
fn my_status() -> DbStatus {
    State::load(Path::new(".")).unwrap_or_default().databases.remove(&my_database()).unwrap_or_default()
}

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
    let status = my_status();
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

/// The security advisories that affect the installed version (SPEC §9), from the latest
/// answer that was read, kept in the worker's state (so they survive restarts). Cluster-wide:
/// every database runs the same library.
#[allow(clippy::type_complexity)]
#[pg_extern(volatile)]
fn get_telemetry_advisories() -> TableIterator<
    'static,
    (
        name!(id, String),
        name!(aliases, Vec<String>),
        name!(severity, String),
        name!(summary, String),
        name!(fixed_in, Option<String>),
        name!(url, Option<String>),
        name!(first_seen, TimestampWithTimeZone),
    ),
> {
    let advisories = State::load(Path::new(".")).unwrap_or_default().advisories;
    TableIterator::new(advisories.into_iter().map(|seen| {
        let a = seen.advisory;
        (a.id, a.aliases, a.severity, a.summary, a.fixed_in, a.url, to_timestamp(seen.first_seen))
    }))
}

/// The current database's last attempts (at most 30), newest first (SPEC §9).
#[allow(clippy::type_complexity)]
#[pg_extern(volatile)]
fn get_telemetry_history() -> TableIterator<
    'static,
    (
        name!(at, TimestampWithTimeZone),
        name!(ok, bool),
        name!(status, Option<i32>),
        name!(error, Option<String>),
        name!(bytes, Option<i64>),
        name!(sha256, Option<String>),
        name!(ms, Option<i64>),
    ),
> {
    let status = my_status();
    let int = |n: Option<u64>| n.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
    TableIterator::new(status.history.into_iter().rev().map(move |a| {
        (to_timestamp(a.at), a.ok, a.status.map(i32::from), a.error, int(a.bytes), a.sha256, int(a.ms))
    }))
}

/// The exact report the endpoint last accepted for the current database (SPEC §9); NULL
/// before the first. Read from the file the launcher keeps, no larger than a report can be.
#[pg_extern(volatile)]
fn get_telemetry_last_sent() -> Option<ReportJsonb> {
    use std::io::Read;
    let file = std::fs::File::open(sent_path(my_database(), "json")).ok()?;
    let mut bytes = Vec::new();
    file.take(MAX_REPORT_BYTES as u64 * 2).read_to_end(&mut bytes).ok()?;
    serde_json::from_slice(&bytes).ok().map(ReportJsonb)
}

extension_sql!(
    "REVOKE ALL ON FUNCTION get_telemetry_advisories() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION get_telemetry_advisories() TO pg_monitor;
REVOKE ALL ON FUNCTION get_telemetry_history() FROM PUBLIC;
REVOKE ALL ON FUNCTION get_telemetry_last_sent() FROM PUBLIC;",
    name = "what_was_sent_is_for_superusers",
    requires = [get_telemetry_advisories, get_telemetry_history, get_telemetry_last_sent],
);

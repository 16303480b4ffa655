//! A collector: a short-lived worker connected to one database. It finds out whether the
//! database has the extension, which telemetry level governs it, and (unless `off`) builds
//! its report; hands that to the launcher through [`crate::handover`] and exits. It never
//! talks to the network and lives a fraction of a second, so it never holds up DROP
//! DATABASE, ALTER DATABASE RENAME or CREATE DATABASE ... TEMPLATE for long.

use std::path::Path;

use pgrx::bgworkers::BackgroundWorker;
use pgrx::prelude::*;

use crate::catalog_scan::{name_str, scan, scan_rows};
use crate::handover::{self, Collected};
use crate::level::{self, RoleSetting};
use crate::report::collect;
use crate::settings::{Settings, TelemetryLevel, TELEMETRY_LEVEL};

const LEVEL_GUC: &str = "timescaledb.telemetry_level";
/// A collector gives up after this long, whatever it is doing (its own statement timeout:
/// a background worker's SPI queries arm none by themselves).
const COLLECTOR_TIMEOUT_MS: i32 = 30_000;

// Trust: everything here runs as a superuser, in a database whose owner may have set its
// search_path (ALTER DATABASE ... SET): `collect_in_database` pins it before anything is
// read; the scans below read only pg_catalog's catalogs, and the one query our own table.

/// The owner of the extension in this database, or `None` when it is not installed.
/// A raw catalog scan, as `role_settings` below: in a collector's fresh backend, parsing and
/// planning a query cost more than reading the few rows (every visit is such a backend).
fn extension_owner() -> Option<pg_sys::Oid> {
    // SAFETY: FormData_pg_extension is pg_extension's row type; extname and extowner are
    // fixed-size fields.
    let owners = unsafe {
        scan(pg_sys::ExtensionRelationId, |e: &pg_sys::FormData_pg_extension| {
            (name_str(&e.extname) == "timescaledb_telemetry").then_some(e.extowner)
        })
    };
    owners.into_iter().next()
}

/// pg_db_role_setting's fixed-size part (`catalog/pg_db_role_setting.h`, the same in every
/// supported major; pgrx binds no such struct), its oid and its column `setconfig` (text[]).
#[repr(C)]
struct FormDataPgDbRoleSetting {
    setdatabase: pg_sys::Oid,
    setrole: pg_sys::Oid,
}
const DB_ROLE_SETTING_RELATION_ID: u32 = 2964;
const ANUM_SETCONFIG: usize = 3;
/// The longest `setconfig` entry read: the level's name, `=` and any of its values fit.
const MAX_LEVEL_ENTRY: usize = 64;

/// The pg_db_role_setting rows that apply to a session of `owner` in this database (pg_catalog
/// only: a shared catalog that only superusers write). Entries come as stored, in this
/// database's encoding: what is not UTF-8 is replaced, never an error.
fn role_settings(owner: pg_sys::Oid) -> Vec<RoleSetting> {
    // SAFETY: reading this session's database oid, set at connection.
    let database = unsafe { pg_sys::MyDatabaseId };
    let none = pg_sys::Oid::INVALID;
    // SAFETY: FormDataPgDbRoleSetting is pg_db_role_setting's fixed-size part, and its
    // column 3 is a text[].
    unsafe {
        scan_rows(pg_sys::Oid::from(DB_ROLE_SETTING_RELATION_ID), |s: &FormDataPgDbRoleSetting, row| {
            let applies = (s.setdatabase == none || s.setdatabase == database)
                && (s.setrole == none || s.setrole == owner);
            applies.then(|| RoleSetting {
                for_database: s.setdatabase != none,
                for_role: s.setrole != none,
                // Only the entries that set the level, and only short ones: an owner may set
                // a placeholder parameter of her own to hundreds of MB.
                config: row.text_array(ANUM_SETCONFIG, |entry| {
                    let sets_level = entry.len() <= MAX_LEVEL_ENTRY
                        && entry.len() > LEVEL_GUC.len()
                        && entry[..LEVEL_GUC.len()].eq_ignore_ascii_case(LEVEL_GUC.as_bytes());
                    sets_level.then(|| String::from_utf8_lossy(entry).into_owned())
                }),
            })
        })
    }
}

/// Makes the session's user the bootstrap superuser this collector connected as again:
/// `ALTER DATABASE … SET session_authorization` applies to a background worker's session
/// (and would make the collector run as the owner's choice). A catalog lookup, so inside
/// the first transaction, before any query; `role` goes back to none after it.
fn restore_session_user() {
    // SAFETY: inside a transaction (the lookup by oid of a role that always exists); the
    // name is palloc'd and NUL-terminated; the override source outranks every database and
    // role setting, and this process was authenticated as that very superuser, so the
    // check hook allows it.
    unsafe {
        let superuser = pg_sys::GetUserNameFromId(pg_sys::Oid::from(pg_sys::BOOTSTRAP_SUPERUSERID), false);
        for (name, value) in [(c"session_authorization", superuser.cast_const()), (c"role", c"none".as_ptr())]
        {
            pg_sys::SetConfigOption(
                name.as_ptr(),
                value,
                pg_sys::GucContext::PGC_SUSET,
                pg_sys::GucSource::PGC_S_OVERRIDE,
            );
        }
    }
}

fn collect_in_database(db_oid: u32, file_level: TelemetryLevel) -> Collected {
    restore_session_user();
    // First of all, before any query resolves a name: the search path a database owner may
    // have set for this database is replaced by pg_catalog alone. A collector must also never
    // hold its database for long (DROP DATABASE waits for it): give up on a catalog lock held
    // by someone else rather than queue behind it. (Neither is a query: nothing resolved.)
    collect::pin_search_path();
    crate::server::set_local(c"lock_timeout", c"2s");
    let Some(owner) = extension_owner() else { return Collected::Absent };
    let rows = role_settings(owner);
    let level =
        level::in_effect(LEVEL_GUC, file_level.as_str(), &rows, |v| TelemetryLevel::parse(v).is_some());
    if TelemetryLevel::parse(&level) == Some(TelemetryLevel::Off) {
        return Collected::Off;
    }
    let report = match collect::collect(
        &Settings::current(),
        TelemetryLevel::parse(&level).unwrap_or(TelemetryLevel::Basic),
    ) {
        Ok(report) => report,
        Err(e) => return Collected::Failed { error: e.to_string() },
    };
    if report.unsettled_copy {
        if let Err(e) = settle_copy(report.db_uuid.as_deref(), db_oid) {
            return Collected::Failed { error: format!("could not record the copy's own uuid: {e}") };
        }
    }
    let usage = report.functions_used.as_ref().map(|f| f.to_acknowledge()).unwrap_or_default();
    Collected::Report { level, report: report.to_json(), usage }
}

/// Writes a copy's derived uuid and its own oid (`db_oid`) into its metadata, so that its
/// identity no longer depends on its oid (see `report::identity`). Trust: our own table,
/// qualified, with pg_catalog's operators (search path pinned).
fn settle_copy(uuid: Option<&str>, db_oid: u32) -> Result<(), pgrx::spi::Error> {
    let Some(uuid) = uuid else { return Ok(()) };
    Spi::run_with_args(
        "UPDATE ONLY _timescaledb_catalog.metadata
            SET value = CASE key WHEN 'uuid' THEN $1 ELSE $2 END
          WHERE key IN ('uuid', 'uuid_database_oid')",
        &[uuid.into(), db_oid.to_string().into()],
    )
}

/// Forces the collector's own settings (`crate::session`) over whatever the database's and
/// role's defaults gave this session at connection. Before the first transaction, so that
/// transaction already starts read-committed, read-write and not deferrable. An invalid
/// value is an ERROR (a failed visit).
fn force_own_settings() {
    force(crate::session::collector_settings(pg_sys::PG_VERSION_NUM / 10000));
}

/// Sets each parameter to its value with the override source.
fn force(settings: impl IntoIterator<Item = (&'static str, &'static str)>) {
    for (name, value) in settings {
        let name = std::ffi::CString::new(name).expect("no NUL in our names");
        let value = std::ffi::CString::new(value).expect("no NUL in our values");
        // SAFETY: both are NUL-terminated strings that outlive the calls; the override
        // source outranks every database and role setting; none of these parameters needs
        // a transaction to be set ("role = none" looks nothing up).
        unsafe {
            pg_sys::SetConfigOption(
                name.as_ptr(),
                value.as_ptr(),
                pg_sys::GucContext::PGC_SUSET,
                pg_sys::GucSource::PGC_S_OVERRIDE,
            );
        }
    }
}

/// Entry point of a collector; the argument is the database's oid and the visit's number.
#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn timescaledb_telemetry_collector_main(arg: pg_sys::Datum) {
    let (db_oid, visit) = handover::from_worker_argument(arg.value() as u64);
    // SIGTERM keeps PostgreSQL's default for background workers (exit at once): a
    // collector has nothing to finish.
    // SAFETY: called once, at the start of a background worker, as PostgreSQL requires.
    unsafe { pg_sys::BackgroundWorkerUnblockSignals() };
    // Read before connecting: this is the configuration-file level (the postmaster's, after
    // its last reload); connecting applies database and role settings on top of it.
    let file_level = TELEMETRY_LEVEL.get();
    force(crate::session::BEFORE_CONNECTING);
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(pg_sys::Oid::from(db_oid)), None);
    // When it fires, the next interrupt check raises an ERROR that the PgTryBuilder below
    // turns into a failure.
    crate::server::arm_statement_timeout(COLLECTOR_TIMEOUT_MS);

    // A collector's queries are ours, not the database's usage: nothing is counted here.
    let collected = PgTryBuilder::new(|| {
        force_own_settings();
        crate::functions::hook::without_counting(|| {
            BackgroundWorker::transaction(|| collect_in_database(db_oid, file_level))
        })
    })
    .catch_others(|e| {
        let message = match &e {
            pg_sys::panic::CaughtError::PostgresError(r)
            | pg_sys::panic::CaughtError::ErrorReport(r)
            | pg_sys::panic::CaughtError::RustPanic { ereport: r, .. } => r.message().to_string(),
        };
        Collected::Failed { error: format!("could not collect the report: {message}") }
    })
    .execute();
    // A backend's working directory is the data directory.
    if let Err(e) = handover::put(Path::new("."), db_oid, visit, collected) {
        log!("timescaledb_telemetry: could not hand the report over to the launcher: {e}");
    }
}

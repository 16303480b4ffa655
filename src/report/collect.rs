//! Fills a [`Report`] from its real sources: SPI over the catalogs, the database's files, the
//! host, and the settings snapshot. Read-only: collecting a report changes nothing.

use std::cell::RefCell;
use std::fmt;
use std::path::Path;
use std::rc::Rc;

use pgrx::prelude::*;
use pgrx::spi::{OwnedPreparedStatement, SpiClient};

use super::model::{
    cut, AccessMethodStats, Edition, FunctionsUsed, Relations, Replication, Report, MAX_METADATA_ROWS,
    MAX_METADATA_VALUE_BYTES, RELATED_EXTENSIONS,
};
use super::{identity, relations, sizes, system};
use crate::catalog_scan::{name_str, scan, scan_rows};
use crate::encoding;
use crate::functions::{self, hook};
use crate::settings::{License, Settings, TelemetryLevel};

const TIMESCALEDB_TABLE_SQL: &str = include_str!("../../sql/timescaledb_table.sql");
const METADATA_SQL: &str = include_str!("../../sql/metadata.sql");

/// The query every report runs, planned once per backend and kept (SPI_keepplan): parsing
/// and planning it at every call was much of an empty database's report. The plan cache
/// re-plans a kept plan when anything it read changes (our table dropped and made again)
/// and under the search path in force, which `collect` pins before every use.
struct Plans {
    metadata: OwnedPreparedStatement,
}

thread_local! {
    static PLANS: RefCell<Option<Rc<Plans>>> = const { RefCell::new(None) };
}

/// The kept plans, prepared on first use (a failure keeps nothing and is the caller's error).
fn plans(client: &SpiClient<'_>) -> Result<Rc<Plans>, pgrx::spi::Error> {
    if let Some(plans) = PLANS.with(|p| p.borrow().clone()) {
        return Ok(plans);
    }
    let plans = Rc::new(Plans {
        metadata: client
            .prepare(METADATA_SQL, &[PgBuiltInOids::INT4OID.into(), PgBuiltInOids::INT8OID.into()])?
            .keep(),
    });
    PLANS.with(|p| *p.borrow_mut() = Some(plans.clone()));
    Ok(plans)
}

/// Why a report could not be collected.
#[derive(Debug)]
pub(crate) enum CollectError {
    /// A catalog query failed.
    Query(pgrx::spi::Error),
    /// The database's files could not be listed.
    Files(std::io::Error),
}

impl fmt::Display for CollectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CollectError::Query(e) => write!(f, "catalog query failed: {e}"),
            CollectError::Files(e) => write!(f, "could not read the database's files: {e}"),
        }
    }
}

impl From<pgrx::spi::Error> for CollectError {
    fn from(e: pgrx::spi::Error) -> Self {
        CollectError::Query(e)
    }
}

/// What every report needs besides the tables, the files and the metadata rows.
struct Basics {
    db_oid: u32,
    db_tablespace: u32,
    server_version: String,
    /// This extension's installed version.
    extversion: String,
    /// The names of all installed extensions.
    extensions: Vec<String>,
    replication: Replication,
    /// The cluster's: a copy's uuid is derived from it.
    system_identifier: u64,
}

/// Reads the [`Basics`] without a query, from the session, shared memory and a raw scan of
/// pg_extension: in a collector's fresh backend (every visit is one), parsing and planning
/// the query that read them cost more than an empty database's whole file walk.
fn basics() -> Basics {
    // SAFETY: this session's database and its default tablespace, set at connection; the
    // system identifier, read from the control data in shared memory.
    let (db_oid, db_tablespace, system_identifier) = unsafe {
        (pg_sys::MyDatabaseId.to_u32(), pg_sys::MyDatabaseTableSpace.to_u32(), pg_sys::GetSystemIdentifier())
    };
    // SAFETY: a built-in parameter, always there (so no error); its value is copied at once.
    let server_version = unsafe {
        std::ffi::CStr::from_ptr(pg_sys::GetConfigOption(c"server_version".as_ptr(), false, false))
    }
    .to_string_lossy()
    .into_owned();
    let mut extversion = None;
    // SAFETY: FormData_pg_extension is pg_extension's row type, extname a fixed-size field,
    // and its column extversion a text.
    let extensions = unsafe {
        scan_rows(pg_sys::ExtensionRelationId, |e: &pg_sys::FormData_pg_extension, row| {
            let name = name_str(&e.extname);
            if name == "timescaledb_telemetry" {
                extversion = row.text(pg_sys::Anum_pg_extension_extversion as usize);
            }
            Some(name)
        })
    };
    Basics {
        db_oid,
        db_tablespace,
        server_version,
        extversion: extversion.map(|v| encoding::from_database(&v)).unwrap_or_default(),
        extensions,
        replication: replication(),
        system_identifier,
    }
}

/// What `pg_stat_replication` and `pg_stat_wal_receiver` would show: the WAL senders that
/// have a process, and whether a WAL receiver has one and is ready to be shown. Read from
/// shared memory as their functions read it, but without their spinlocks: each field is one
/// aligned word, and a fact a moment old is as good as theirs (they drop the lock before
/// they answer).
fn replication() -> Replication {
    // SAFETY: WalSndCtl holds max_wal_senders slots and WalRcv one struct, both in shared
    // memory made at server start (so valid for the process's life; checked for NULL all the
    // same); each field is read once, volatile, never written.
    unsafe {
        let mut num_wal_senders = 0;
        if !pg_sys::WalSndCtl.is_null() {
            let slots = (*pg_sys::WalSndCtl).walsnds.as_ptr();
            for i in 0..usize::try_from(pg_sys::max_wal_senders).unwrap_or(0) {
                if std::ptr::read_volatile(&raw const (*slots.add(i)).pid) != 0 {
                    num_wal_senders += 1;
                }
            }
        }
        let receiver = pg_sys::WalRcv;
        let is_wal_receiver = !receiver.is_null()
            && std::ptr::read_volatile(&raw const (*receiver).pid) != 0
            && std::ptr::read_volatile(&raw const (*receiver).ready_to_display);
        Replication { num_wal_senders, is_wal_receiver }
    }
}

/// Rows of TimescaleDB's catalog table `table` matching `filter`; 0 unless the table is
/// TimescaleDB's own (see `sql/timescaledb_table.sql`): a view, a rule or a table of the same
/// name made by a database owner is never read.
/// Without the `timescaledb` extension installed (`installed` false) no table can qualify,
/// and nothing is asked: the common case costs no query.
fn count_timescaledb_rows(
    client: &SpiClient<'_>,
    installed: bool,
    table: &str,
    filter: &str,
) -> Result<i64, CollectError> {
    if !installed || client.select(TIMESCALEDB_TABLE_SQL, Some(1), &[table.into()])?.is_empty() {
        return Ok(0);
    }
    // `table` and `filter` are our constants, never user input. ONLY: the table's children,
    // should a superuser have made any, are not TimescaleDB's catalog.
    let sql = format!("SELECT pg_catalog.count(*) FROM ONLY {table} {filter}");
    Ok(client.select(&sql, None, &[])?.first().get_one::<i64>()?.unwrap_or(0))
}

/// Called during the file walk, which any role can start and which may be long: answers a
/// cancel or `statement_timeout` (an ERROR that unwinds the walk), and leaves at once when
/// the postmaster has died, so that a restart is never held up by this process.
fn check_interrupts() {
    pgrx::check_for_interrupts!();
    // SAFETY: reading a flag set at process start; proc_exit is how a server process leaves.
    unsafe {
        if pg_sys::IsUnderPostmaster && !crate::server::postmaster_is_alive() {
            pg_sys::proc_exit(1);
        }
    }
}

/// Counts and sizes of the user relations, and their access methods: pg_namespace,
/// pg_class, pg_index and pg_am read with raw catalog scans (see `catalog_scan` for why),
/// summarised against the file sizes.
fn relations(files: &sizes::FileSizes, db_tablespace: u32) -> (Relations, Vec<(String, AccessMethodStats)>) {
    // SAFETY: each FormData type is its catalog's row type; only fixed-size fields are read.
    let (user_schemas, classes, indexes, am_names) = unsafe {
        let user_schemas: sizes::OidSet<u32> =
            scan(pg_sys::NamespaceRelationId, |ns: &pg_sys::FormData_pg_namespace| {
                relations::is_user_schema(&name_str(&ns.nspname)).then_some(ns.oid.to_u32())
            })
            .into_iter()
            .collect();
        let classes = scan(pg_sys::RelationRelationId, |c: &pg_sys::FormData_pg_class| {
            Some(relations::ClassRow {
                oid: c.oid.to_u32(),
                namespace: c.relnamespace.to_u32(),
                kind: c.relkind as u8,
                tablespace: c.reltablespace.to_u32(),
                filenode: c.relfilenode.to_u32(),
                toast: c.reltoastrelid.to_u32(),
                access_method: c.relam.to_u32(),
                pages: i64::from(c.relpages),
            })
        });
        let indexes = scan(pg_sys::IndexRelationId, |i: &pg_sys::FormData_pg_index| {
            Some(relations::IndexRow { index: i.indexrelid.to_u32(), indexed: i.indrelid.to_u32() })
        });
        let am_names: sizes::OidMap<u32, String> =
            scan(pg_sys::AccessMethodRelationId, |am: &pg_sys::FormData_pg_am| {
                Some((am.oid.to_u32(), name_str(&am.amname)))
            })
            .into_iter()
            .collect();
        (user_schemas, classes, indexes, am_names)
    };
    (
        relations::summarise(&classes, &indexes, &user_schemas, db_tablespace, files),
        relations::access_methods(&classes, &user_schemas, &am_names),
    )
}

/// `functions_used` of database `db_oid` at `level`: the counts of the shared usage table,
/// named by `hook::key`. Functions that cannot be named (dropped since, or no longer a
/// related extension's) are left out, but subtracted with the report.
fn functions_used(db_oid: u32, level: TelemetryLevel) -> Option<FunctionsUsed> {
    if level != TelemetryLevel::Basic {
        return None;
    }
    let mut usage = functions::usage(db_oid);
    let keys: sizes::OidMap<u32, String> =
        usage.counts.iter().filter_map(|(func, _)| Some((*func, hook::key(*func)?))).collect();
    let unnamed: Vec<(u32, u64)> =
        usage.counts.iter().filter(|(func, _)| !keys.contains_key(func)).copied().collect();
    usage.retain(|func| keys.contains_key(&func));
    // In the order of `usage.counts`, so that a cut (Report::fit) cuts both alike.
    let counts: Vec<(String, u64)> = usage.counts.iter().map(|(func, n)| (keys[func].clone(), *n)).collect();
    Some(FunctionsUsed { counts, truncated: usage.truncated(), usage, unnamed })
}

/// The uuid a copy of another database reports (see `identity`).
fn copy_uuid(
    client: &SpiClient<'_>,
    template_uuid: &str,
    system_identifier: u64,
    db_oid: u32,
) -> Result<Option<String>, CollectError> {
    let seed = identity::copy_seed(template_uuid, system_identifier, db_oid);
    // Trust: pg_catalog's functions, named in full, on a bound parameter.
    let digest: Option<String> = client
        .select(
            "SELECT pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to($1, 'UTF8')), 'hex')",
            None,
            &[seed.into()],
        )?
        .first()
        .get_one()?;
    Ok(digest.as_deref().and_then(identity::uuid_from_digest))
}

/// Pins `search_path` to `pg_catalog, pg_temp` for the rest of the transaction (as `SET
/// LOCAL` does), without a query: no name is resolved, and nothing is parsed or planned.
/// (`get_telemetry_report()` pins it on the function as well, and the collector for its
/// whole session; this is the third lock on the same door.)
pub(crate) fn pin_search_path() {
    crate::server::set_local(c"search_path", c"pg_catalog, pg_temp");
}

/// Collects the report of the current database.
///
/// Trust: runs with elevated rights (inside the security-definer `get_telemetry_report()`,
/// or in the collector, connected as a superuser). So it first pins the search path for the
/// rest of the transaction (or function call), and then every query names pg_catalog's
/// objects or our own table, resolves functions and operators in pg_catalog only, and reads
/// TimescaleDB's tables only once `count_timescaledb_rows` has found them trustworthy.
pub(crate) fn collect(settings: &Settings, level: TelemetryLevel) -> Result<Report, CollectError> {
    // The report's own queries are not the database's function usage.
    functions::hook::without_counting(|| collect_counted(settings, level))
}

fn collect_counted(settings: &Settings, level: TelemetryLevel) -> Result<Report, CollectError> {
    Spi::connect(|client| {
        pin_search_path();
        let plans = plans(client)?;
        let Basics {
            db_oid,
            db_tablespace,
            server_version,
            extversion,
            extensions,
            replication,
            system_identifier,
        } = basics();

        let mut db_uuid = None;
        let mut exported_db_uuid = None;
        let mut installed_time = None;
        let mut uuid_database_oid = None;
        let mut db_metadata = Vec::new();
        // The reserved rows, then at most one more than MAX_METADATA_ROWS telemetry rows
        // (one more tells that some were left out), each value cut by the server to one
        // character more than fits in MAX_METADATA_VALUE_BYTES (a slice: a value of any size
        // is never read whole), and converted to UTF-8 by the server whatever the database's
        // encoding (bytes, so that what is not UTF-8 after all is escaped, never an error).
        let value_chars = MAX_METADATA_VALUE_BYTES as i32 + 1;
        let rows = MAX_METADATA_ROWS as i64 + 1;
        let metadata = client.select(&plans.metadata, None, &[value_chars.into(), rows.into()])?;
        let mut db_metadata_truncated = false;
        for row in metadata {
            let Some(key) = row.get::<Vec<u8>>(1)? else { continue };
            let Some(value) = row.get::<Vec<u8>>(2)? else {
                db_metadata_truncated = true; // too costly to read (see sql/metadata.sql)
                continue;
            };
            let (key, value) = (encoding::from_database(&key), encoding::from_database(&value));
            match key.as_str() {
                "uuid" => db_uuid = Some(value),
                "exported_uuid" => exported_db_uuid = Some(value),
                "install_timestamp" => installed_time = identity::iso8601_utc(&value),
                "uuid_database_oid" => uuid_database_oid = Some(value),
                _ if db_metadata.len() == MAX_METADATA_ROWS => db_metadata_truncated = true,
                _ => {
                    let (value, was_cut) = cut(value, MAX_METADATA_VALUE_BYTES);
                    db_metadata_truncated |= was_cut;
                    db_metadata.push((key, value));
                }
            }
        }

        let unsettled_copy = identity::is_copy(uuid_database_oid.as_deref(), db_oid);
        if unsettled_copy {
            if let Some(template_uuid) = db_uuid.take() {
                db_uuid = copy_uuid(client, &template_uuid, system_identifier, db_oid)?;
            }
        }

        // A backend's working directory is the data directory.
        let version_dir =
            format!("PG_{}_{}", pg_sys::PG_MAJORVERSION.to_string_lossy(), pg_sys::CATALOG_VERSION_NO);
        let files = sizes::scan_database(Path::new("."), db_oid, &version_dir, &mut check_interrupts)
            .map_err(CollectError::Files)?;

        let (relations, access_methods) = relations(&files, db_tablespace);
        let timescaledb = extensions.iter().any(|e| e == "timescaledb");
        let mut report = Report {
            db_uuid,
            exported_db_uuid,
            installed_time,
            last_tuned_time: settings.last_tuned.clone(),
            last_tuned_version: settings.last_tuned_version.clone(),
            system: system::facts(&system::Build {
                install_method: env!("TT_INSTALL_METHOD"),
                os_name: env!("TT_BUILD_OS_NAME"),
                os_version: env!("TT_BUILD_OS_VERSION"),
            }),
            postgresql_version: server_version.split_whitespace().next().unwrap_or("").to_string(),
            timescaledb_version: extversion,
            data_volume: files.total,
            num_hypertables: count_timescaledb_rows(
                client,
                timescaledb,
                "_timescaledb_catalog.hypertable",
                "",
            )?,
            num_continuous_aggs: count_timescaledb_rows(
                client,
                timescaledb,
                "_timescaledb_catalog.continuous_agg",
                "",
            )?,
            num_reorder_policies: count_timescaledb_rows(
                client,
                timescaledb,
                "_timescaledb_config.bgw_job",
                "WHERE proc_name::pg_catalog.text = 'policy_reorder'",
            )?,
            num_drop_chunks_policies: count_timescaledb_rows(
                client,
                timescaledb,
                "_timescaledb_config.bgw_job",
                "WHERE proc_name::pg_catalog.text = 'policy_retention'",
            )?,
            relations,
            edition: match settings.license {
                License::Apache => Edition::ApacheOnly,
                License::Timescale => Edition::Community,
            },
            db_metadata,
            db_metadata_truncated,
            related_extensions: RELATED_EXTENSIONS
                .iter()
                .map(|(key, extname)| (*key, extensions.iter().any(|e| e == extname)))
                .collect(),
            cloud: settings.cloud.clone(),
            functions_used: functions_used(db_oid, level),
            replication,
            access_methods,
            unsettled_copy,
        };
        report.fit();
        Ok(report)
    })
}

//! SPEC §8: `ALTER EXTENSION timescaledb_telemetry UPDATE` from every released version keeps
//! the metadata rows, the uuids and the worker's state, and leaves the same objects as a
//! fresh install of the new version.

use crate::common::endpoint::{Answer, Endpoint};
use crate::common::{bin, wait_until, Cluster};
use std::time::Duration;

/// Released versions: those whose install scripts are kept in sql/released/, oldest first.
fn released() -> Vec<String> {
    let dir = format!("{}/sql/released", crate::common::REPO);
    let mut versions: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            Some(name.strip_prefix("timescaledb_telemetry--")?.strip_suffix(".sql")?.to_string())
        })
        .collect();
    let key = |v: &String| v.split('.').map(|p| p.parse::<u32>().unwrap()).collect::<Vec<_>>();
    versions.sort_by_key(key);
    assert!(versions.len() >= 2, "no released install scripts in {dir}");
    versions
}

/// Puts the released install script of `version` where CREATE EXTENSION ... VERSION finds
/// it (the build installs only the current one and the update scripts).
fn install_released_script(version: &str) {
    let out = std::process::Command::new(format!("{}/pg_config", bin())).arg("--sharedir").output().unwrap();
    let share = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let name = format!("timescaledb_telemetry--{version}.sql");
    let from = format!("{}/sql/released/{name}", crate::common::REPO);
    std::fs::copy(&from, format!("{share}/extension/{name}")).unwrap();
}

/// What a database's extension consists of: its objects with their definitions and rights.
const OBJECTS: &str = "SELECT string_agg(d, E'\\n' ORDER BY d) FROM (
    SELECT pg_describe_object(classid, objid, 0)
           || coalesce(' ' || (SELECT p.prosecdef || ' ' || coalesce(p.proconfig::text, '') || ' ' || coalesce(p.proacl::text, '')
                                 FROM pg_proc p WHERE classid = 'pg_proc'::regclass AND p.oid = objid), '')
           || coalesce(' ' || (SELECT c.relacl::text FROM pg_class c WHERE classid = 'pg_class'::regclass AND c.oid = objid), '')
           || coalesce(' ' || (SELECT n.nspacl::text FROM pg_namespace n WHERE classid = 'pg_namespace'::regclass AND n.oid = objid), '') AS d
      FROM pg_depend
     WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
       AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'timescaledb_telemetry')) objects";

/// The rows a user or an earlier version put in (0.3.0 adds `uuid_database_oid`, checked
/// on its own).
const ROWS: &str = "SELECT string_agg(key || '=' || value || '/' || include_in_telemetry, ',' ORDER BY key) FROM _timescaledb_catalog.metadata WHERE key <> 'uuid_database_oid'";
const OWN_OID: &str = "SELECT value = (SELECT oid::text FROM pg_database WHERE datname = current_database()) FROM _timescaledb_catalog.metadata WHERE key = 'uuid_database_oid'";
/// What pg_dump leaves out of the metadata table.
const DUMP_FILTER: &str = "SELECT extcondition FROM pg_extension WHERE extname = 'timescaledb_telemetry'";

#[test]
fn update_from_every_released_version_keeps_data_and_state_and_equals_a_fresh_install() {
    let ep = Endpoint::start(Answer::version("0.1.0"));
    let c = Cluster::reporting_to(&ep, "1h", "");
    c.create_db_with_extension("fresh");
    let fresh = c.psql("fresh", OBJECTS);
    let fresh_filter = c.psql("fresh", DUMP_FILTER);
    for version in &released() {
        install_released_script(version);
        let db = format!("from_{}", version.replace('.', "_"));
        c.psql("postgres", &format!("CREATE DATABASE {db}"));
        c.psql(&db, &format!("CREATE EXTENSION timescaledb_telemetry VERSION '{version}'"));
        c.psql(
            &db,
            "INSERT INTO _timescaledb_catalog.metadata VALUES ('team', 'blue', true), ('quiet', 'x', false)",
        );
        let report = c.report(&db);
        let uuid = report["db_uuid"].as_str().unwrap().to_string();
        // Reported, and the answer recorded in the worker's state.
        let status_sql = "SELECT last_success, next_attempt, latest_version FROM get_telemetry_status()";
        let mut status = String::new();
        assert!(wait_until(Duration::from_secs(15), || {
            status = c.psql(&db, status_sql);
            !ep.requests_for(&uuid).is_empty() && !status.starts_with('|')
        }));
        let rows = c.psql(&db, ROWS);

        c.psql(&db, "ALTER EXTENSION timescaledb_telemetry UPDATE");
        assert_eq!(
            c.psql(&db, "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb_telemetry'"),
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(c.psql(&db, ROWS), rows, "metadata rows changed");
        assert_eq!(c.psql(&db, OWN_OID), "t", "the database the uuid belongs to is recorded");
        assert_eq!(c.psql(&db, DUMP_FILTER), fresh_filter, "pg_dump's filter differs from a fresh install's");
        let after = c.report(&db);
        for key in ["db_uuid", "exported_db_uuid", "installed_time", "db_metadata"] {
            assert_eq!(after[key], report[key], "{key} changed");
        }
        assert_eq!(c.psql(&db, status_sql), status, "the worker's state changed");
        assert_eq!(c.psql(&db, OBJECTS), fresh, "an update from {version} differs from a fresh install");
    }
}

//! docs/report-keys.md documents every key of the report, and nothing else: this test fails
//! when the two disagree. Also: the report carries no identifying names.

use crate::common::Cluster;
use serde_json::Value;
use std::collections::BTreeSet;

/// Every key path of the report (`relations.tables.heap_size`); db_metadata's own keys are
/// user data, documented once as `db_metadata.<key>`.
fn key_paths(value: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    if let Value::Object(map) = value {
        for (key, child) in map {
            let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
            // User data and open-ended names are documented once, by a placeholder.
            let placeholder = match prefix {
                "db_metadata" => Some("db_metadata.<key>"),
                "functions_used" => Some("functions_used.<function>"),
                "access_methods" => Some("access_methods.<amname>"),
                _ => None,
            };
            if let Some(placeholder) = placeholder {
                out.insert(placeholder.to_string());
                if prefix == "access_methods" {
                    key_paths(child, placeholder, out);
                }
                continue;
            }
            out.insert(path.clone());
            key_paths(child, &path, out);
        }
    }
}

fn documented_keys() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(format!("{}/docs/report-keys.md", crate::common::REPO)).unwrap();
    doc.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`'))
        .map(|(key, _)| key.to_string())
        .collect()
}

#[test]
fn every_report_key_is_documented_and_every_documented_key_is_reported() {
    // Every optional key switched on: last_tuned_*, cloud, a db_metadata row (and one cut), function
    // usage over a table of one pair (so functions_used_truncated), an access method.
    let c = Cluster::preloaded(
        "timescaledb.last_tuned = '2026-11-01T10:00:00Z'\ntimescaledb.last_tuned_version = '0.18.0'\n\
         timescaledb_telemetry.cloud = 'aws'\ntimescaledb_telemetry.max_tracked_functions = 1",
    );
    c.create_db_with_extension("app");
    c.psql("app", "INSERT INTO _timescaledb_catalog.metadata VALUES ('team', 'blue', true)");
    // A value longer than 1 KiB: db_metadata_truncated.
    c.psql("app", "INSERT INTO _timescaledb_catalog.metadata VALUES ('notes', repeat('n', 2000), true)");
    c.psql("app", "CREATE TABLE t (id int PRIMARY KEY); SELECT upper('x'), lower('y')");
    let mut reported = BTreeSet::new();
    key_paths(&c.report("app"), "", &mut reported);
    let documented = documented_keys();
    let undocumented: Vec<_> = reported.difference(&documented).collect();
    let missing: Vec<_> = documented.difference(&reported).collect();
    assert!(undocumented.is_empty(), "reported but not documented: {undocumented:?}");
    assert!(missing.is_empty(), "documented but not reported: {missing:?}");
}

#[test]
fn any_role_can_read_the_report_but_not_the_metadata_table() {
    let c = Cluster::plain("");
    c.create_db_with_extension("app");
    c.psql("app", "INSERT INTO _timescaledb_catalog.metadata VALUES ('private_key', 'hush', false)");
    c.psql("postgres", "CREATE ROLE nobody_special LOGIN");
    let report = c.try_psql_as("app", "nobody_special", "SELECT get_telemetry_report()->>'db_uuid'").unwrap();
    assert_eq!(report, c.report("app")["db_uuid"].as_str().unwrap());
    let err = c
        .try_psql_as("app", "nobody_special", "SELECT value FROM _timescaledb_catalog.metadata")
        .unwrap_err();
    assert!(err.contains("permission denied"), "{err}");
    // Nor the worker's status (it shows the endpoint), unless granted.
    let err = c.try_psql_as("app", "nobody_special", "SELECT * FROM get_telemetry_status()").unwrap_err();
    assert!(err.contains("permission denied for function get_telemetry_status"), "{err}");
    c.psql("app", "GRANT EXECUTE ON FUNCTION get_telemetry_status() TO nobody_special");
    assert!(c.try_psql_as("app", "nobody_special", "SELECT endpoint FROM get_telemetry_status()").is_ok());
    // (Hostile search paths, operators and views are tests/security.rs.)
}

#[test]
fn every_scalar_is_a_json_string() {
    fn check(value: &Value, path: &str) {
        match value {
            Value::Object(map) => map.iter().for_each(|(k, v)| check(v, &format!("{path}.{k}"))),
            Value::String(_) => {}
            other => panic!("{path} is not a string: {other}"),
        }
    }
    let c = Cluster::plain("");
    c.create_db_with_extension("app");
    check(&c.report("app"), "");
}

#[test]
fn the_report_names_no_database_role_schema_table_column_host_or_path() {
    let c = Cluster::preloaded("");
    c.psql("postgres", "CREATE ROLE zqrole_owner9 SUPERUSER LOGIN");
    c.psql("postgres", "CREATE DATABASE zqdb_secret9 OWNER zqrole_owner9");
    c.try_psql_as("zqdb_secret9", "zqrole_owner9", "CREATE EXTENSION timescaledb_telemetry").unwrap();
    c.try_psql_as(
        "zqdb_secret9",
        "zqrole_owner9",
        "CREATE SCHEMA zqschema_private9;
         CREATE TABLE zqschema_private9.zqtable_hidden9 (zqcolumn_x9 text PRIMARY KEY);
         INSERT INTO zqschema_private9.zqtable_hidden9 VALUES ('zqvalue9');
         CREATE VIEW zqschema_private9.zqview9 AS SELECT * FROM zqschema_private9.zqtable_hidden9;
         CREATE TYPE zqschema_private9.zqtype9 AS (a int);
         CREATE FUNCTION zqschema_private9.zqfunc9(zqschema_private9.zqtype9) RETURNS text
             LANGUAGE plpgsql AS 'BEGIN RETURN upper($1::text); END';",
    )
    .unwrap();
    // Their functions and types, used with built-ins, are counted under no name of theirs.
    c.try_psql_as(
        "zqdb_secret9",
        "zqrole_owner9",
        "SELECT zqschema_private9.zqfunc9(row(1)::zqschema_private9.zqtype9);
         SELECT row_to_json(row(1)::zqschema_private9.zqtype9);
         SELECT zqcolumn_x9 FROM zqschema_private9.zqview9 WHERE zqcolumn_x9 = 'zqvalue9';",
    )
    .unwrap();
    let text = c.psql("zqdb_secret9", "SELECT get_telemetry_report()::text");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string();
    let data_dir = c.psql("postgres", "SHOW data_directory");
    for needle in [
        "zqrole_owner9",
        "zqdb_secret9",
        "zqschema_private9",
        "zqtable_hidden9",
        "zqcolumn_x9",
        "zqview9",
        "zqvalue9",
        "zqtype9",
        "zqfunc9",
    ] {
        assert!(!text.contains(needle), "report leaks {needle}: {text}");
    }
    assert!(!text.contains(&data_dir), "report leaks the data directory");
    assert!(!text.contains(&c.dir.display().to_string()), "report leaks a path");
    assert!(host.is_empty() || !text.contains(&format!("\"{host}\"")), "report leaks the host name {host}");
    assert!(!text.contains("127.0.0.1"));
    // The tables were still counted.
    let r: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(r["relations"]["tables"]["num_relations"], "1");
    assert_eq!(r["relations"]["views"]["num_relations"], "1");
    assert_eq!(r["functions_used"]["pg_catalog.row_to_json(record)"], "1", "{text}");
}

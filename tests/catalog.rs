//! _timescaledb_catalog.metadata: uuids, install time, db_metadata, pg_dump/restore.

use crate::common::endpoint::{Answer, Endpoint};
use crate::common::{wait_until, Cluster};
use std::time::Duration;

fn is_uuid_v4(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() == 36
        && [8, 13, 18, 23].iter().all(|&i| b[i] == b'-')
        && s.chars().enumerate().all(|(i, ch)| [8, 13, 18, 23].contains(&i) || ch.is_ascii_hexdigit())
        && b[14] == b'4'
        && matches!(b[19], b'8' | b'9' | b'a' | b'b')
}

#[test]
fn uuids_are_v4_distinct_and_stable_across_calls_and_restarts() {
    let c = Cluster::preloaded("");
    c.create_db_with_extension("one");
    c.create_db_with_extension("two");
    let r1 = c.report("one");
    let db_uuid = r1["db_uuid"].as_str().unwrap().to_string();
    let exported = r1["exported_db_uuid"].as_str().unwrap().to_string();
    assert!(is_uuid_v4(&db_uuid), "{db_uuid}");
    assert!(is_uuid_v4(&exported), "{exported}");
    assert_ne!(db_uuid, exported);
    assert_eq!(c.report("one")["db_uuid"], db_uuid.as_str());
    c.restart();
    let again = c.report("one");
    assert_eq!(again["db_uuid"], db_uuid.as_str());
    assert_eq!(again["exported_db_uuid"], exported.as_str());
    let other = c.report("two");
    assert_ne!(other["db_uuid"], db_uuid.as_str());
    assert_ne!(other["exported_db_uuid"], exported.as_str());
}

#[test]
fn installed_time_is_the_same_under_any_datestyle_and_timezone() {
    let c = Cluster::plain("");
    // Written under a DateStyle and a TimeZone far from ISO and UTC, too.
    c.psql("postgres", "CREATE DATABASE app");
    c.psql("app", "SET DateStyle = 'SQL, DMY'; SET TimeZone = 'Pacific/Chatham'; CREATE EXTENSION timescaledb_telemetry");
    let base = c.report("app")["installed_time"].as_str().unwrap().to_string();
    assert!(base.ends_with('Z') && base.contains('T'), "{base}");
    for (style, zone) in
        [("SQL, DMY", "Asia/Kolkata"), ("German", "America/Los_Angeles"), ("Postgres, MDY", "UTC")]
    {
        let r = c.psql(
            "app",
            &format!("SET DateStyle = '{style}'; SET TimeZone = '{zone}'; SELECT get_telemetry_report()->>'installed_time'"),
        );
        assert_eq!(r, base, "under {style} / {zone}");
    }
    // And it is the moment of CREATE EXTENSION.
    let close =
        c.psql("app", &format!("SELECT abs(extract(epoch from now() - '{base}'::timestamptz)) < 600"));
    assert_eq!(close, "t");
}

#[test]
fn db_metadata_has_flagged_rows_and_nothing_else() {
    let c = Cluster::plain("");
    c.create_db_with_extension("app");
    c.psql(
        "app",
        "INSERT INTO _timescaledb_catalog.metadata VALUES
           ('team', 'blue', true), ('secret_key', 'hush-7f3a', false), ('region', 'eu', true)",
    );
    let r = c.report("app");
    assert_eq!(r["db_metadata"], serde_json::json!({"team": "blue", "region": "eu"}));
    let text = r.to_string();
    assert!(!text.contains("hush-7f3a") && !text.contains("secret_key"));
}

#[test]
fn metadata_rejects_nulls_with_a_clear_error() {
    let c = Cluster::plain("");
    c.create_db_with_extension("app");
    let err =
        c.try_psql("app", "INSERT INTO _timescaledb_catalog.metadata VALUES ('k', NULL, true)").unwrap_err();
    assert!(err.contains("null value in column \"value\""), "{err}");
    assert!(c.report("app")["db_uuid"].is_string());
}

#[test]
fn dump_and_restore_keep_exported_uuid_install_time_and_user_rows_with_a_new_uuid() {
    let c = Cluster::plain("");
    c.create_db_with_extension("src");
    c.psql(
        "src",
        "INSERT INTO _timescaledb_catalog.metadata VALUES ('team', 'blue', true), ('quiet', 'x', false)",
    );
    let before = c.report("src");
    let dump = c.dir.join("src.dump");
    let out = c.client("pg_dump", "postgres").args(["-Fc", "-f"]).arg(&dump).arg("src").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    c.psql("postgres", "CREATE DATABASE dst");
    let out = c
        .client("pg_restore", "postgres")
        .args(["--exit-on-error", "-d", "dst"])
        .arg(&dump)
        .output()
        .unwrap();
    assert!(out.status.success(), "pg_restore failed: {}", String::from_utf8_lossy(&out.stderr));
    let after = c.report("dst");
    assert_ne!(after["db_uuid"], before["db_uuid"]);
    assert_eq!(after["exported_db_uuid"], before["exported_db_uuid"]);
    assert_eq!(after["installed_time"], before["installed_time"]);
    assert_eq!(after["db_metadata"], serde_json::json!({"team": "blue"}));
    assert_eq!(c.psql("dst", "SELECT value FROM _timescaledb_catalog.metadata WHERE key = 'quiet'"), "x");
    assert_eq!(c.psql("dst", "SELECT count(*) FROM _timescaledb_catalog.metadata"), "6");
    // The restored database's uuid is its own, recorded by its own CREATE EXTENSION.
    assert_eq!(
        c.psql("dst", "SELECT value = (SELECT oid::text FROM pg_database WHERE datname = 'dst') FROM _timescaledb_catalog.metadata WHERE key = 'uuid_database_oid'"),
        "t"
    );
}

#[test]
fn user_keys_keep_primary_key_semantics() {
    let c = Cluster::plain("");
    c.create_db_with_extension("app");
    c.psql("app", "INSERT INTO _timescaledb_catalog.metadata VALUES ('team', 'blue', true)");
    let err = c
        .try_psql("app", "INSERT INTO _timescaledb_catalog.metadata VALUES ('team', 'red', true)")
        .unwrap_err();
    assert!(err.contains("duplicate key"), "{err}");
    let err = c
        .try_psql("app", "INSERT INTO _timescaledb_catalog.metadata VALUES ('uuid', 'x', true)")
        .unwrap_err();
    assert!(err.contains("duplicate key"), "{err}");
}

#[test]
fn a_database_owner_who_is_no_superuser_can_dump_and_restore_their_database() {
    let c = Cluster::plain("");
    c.psql("postgres", "CREATE ROLE owner LOGIN CREATEDB; CREATE ROLE other LOGIN");
    c.psql("postgres", "CREATE DATABASE src OWNER owner");
    c.psql("src", "CREATE EXTENSION timescaledb_telemetry");
    c.try_psql_as(
        "src",
        "owner",
        "INSERT INTO _timescaledb_catalog.metadata VALUES ('team', 'blue', true), ('quiet', 'x', false);
         CREATE TABLE public.t (x int); INSERT INTO public.t VALUES (1)",
    )
    .unwrap();
    let before = c.report("src");
    let dump = c.dir.join("owner.dump");
    let out = c.client("pg_dump", "owner").args(["-Fc", "-f"]).arg(&dump).arg("src").output().unwrap();
    assert!(out.status.success(), "pg_dump as the owner failed: {}", String::from_utf8_lossy(&out.stderr));
    c.try_psql_as("postgres", "owner", "CREATE DATABASE dst").unwrap();
    let out =
        c.client("pg_restore", "owner").args(["--exit-on-error", "-d", "dst"]).arg(&dump).output().unwrap();
    assert!(out.status.success(), "pg_restore as the owner failed: {}", String::from_utf8_lossy(&out.stderr));
    let after = c.report("dst");
    assert!(after["db_uuid"].is_string());
    assert_ne!(after["db_uuid"], before["db_uuid"]);
    assert_eq!(after["exported_db_uuid"], before["exported_db_uuid"]);
    assert_eq!(after["installed_time"], before["installed_time"]);
    assert_eq!(after["db_metadata"], serde_json::json!({"team": "blue"}));
    assert_eq!(c.psql("dst", "SELECT value FROM _timescaledb_catalog.metadata WHERE key = 'quiet'"), "x");
    assert_eq!(c.psql("dst", "SELECT count(*) FROM public.t"), "1");
    // Other roles still read no metadata row, in either database.
    for db in ["src", "dst"] {
        let err = c.try_psql_as(db, "other", "SELECT value FROM _timescaledb_catalog.metadata").unwrap_err();
        assert!(err.contains("permission denied"), "{err}");
    }
}

#[test]
fn deleted_metadata_rows_leave_their_keys_out() {
    let c = Cluster::plain("");
    c.create_db_with_extension("app");
    let full = c.report("app");
    for key in ["db_uuid", "exported_db_uuid", "installed_time"] {
        assert!(full[key].is_string(), "{key}");
    }
    c.psql("app", "DELETE FROM _timescaledb_catalog.metadata WHERE key IN ('uuid', 'install_timestamp')");
    let r = c.report("app");
    assert!(r.get("db_uuid").is_none(), "{r}");
    assert!(r.get("installed_time").is_none(), "{r}");
    assert_eq!(r["exported_db_uuid"], full["exported_db_uuid"]);
}

#[test]
fn a_copy_made_from_a_template_reports_its_own_stable_uuid_and_keeps_the_exported_one() {
    let ep = Endpoint::start(Answer::version("0.1.0"));
    let c = Cluster::reporting_to(&ep, "2s", "");
    c.create_db_with_extension("t");
    let t = c.report("t");
    c.psql("postgres", "CREATE DATABASE copy1 TEMPLATE t");
    c.psql("postgres", "CREATE DATABASE copy2 TEMPLATE t");
    let copy1 = c.report("copy1");
    let copy2 = c.report("copy2");
    let uuid1 = copy1["db_uuid"].as_str().unwrap().to_string();
    assert!(is_uuid_v4(&uuid1), "{uuid1}");
    assert_ne!(copy1["db_uuid"], t["db_uuid"]);
    assert_ne!(copy2["db_uuid"], t["db_uuid"]);
    assert_ne!(copy1["db_uuid"], copy2["db_uuid"]);
    assert_eq!(copy1["exported_db_uuid"], t["exported_db_uuid"]);
    assert_eq!(c.report("copy1")["db_uuid"], uuid1.as_str(), "not stable across calls");
    // Derived from the template's uuid, the cluster's system identifier as
    // pg_control_system() shows it, and the copy's oid (a digest with the version-4 bits set).
    let digest = c.psql(
        "copy1",
        &format!(
            "SELECT encode(sha256(convert_to('timescaledb_telemetry copy/{}/'
                 || (SELECT system_identifier FROM pg_control_system()) || '/'
                 || (SELECT oid FROM pg_database WHERE datname = 'copy1'), 'UTF8')), 'hex')",
            t["db_uuid"].as_str().unwrap()
        ),
    );
    let hex: String = uuid1.chars().filter(|c| *c != '-').collect();
    assert_eq!((hex.len(), digest.len()), (32, 64), "{uuid1} / {digest}");
    for (i, (a, b)) in hex.chars().zip(digest.chars()).enumerate() {
        assert!(a == b || i == 12 || i == 16, "{uuid1} is not from {digest}");
    }
    // A copy of a copy is a copy too.
    c.psql("postgres", "CREATE DATABASE copy3 TEMPLATE copy1");
    let uuid3 = c.report("copy3")["db_uuid"].clone();
    assert_ne!(uuid3, uuid1.as_str());
    assert_ne!(uuid3, t["db_uuid"]);

    // The worker reports each under its own uuid, and writes the copy's into its rows.
    let t_uuid = t["db_uuid"].as_str().unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || {
            !ep.requests_for(t_uuid).is_empty() && !ep.requests_for(&uuid1).is_empty()
        }),
        "requests: {:?}",
        ep.requests().iter().map(|r| r.json()["db_uuid"].clone()).collect::<Vec<_>>()
    );
    assert!(wait_until(Duration::from_secs(10), || c
        .psql("copy1", "SELECT value FROM _timescaledb_catalog.metadata WHERE key = 'uuid'")
        == uuid1));
    assert_eq!(
        c.psql("copy1", "SELECT value = (SELECT oid::text FROM pg_database WHERE datname = 'copy1') FROM _timescaledb_catalog.metadata WHERE key = 'uuid_database_oid'"),
        "t"
    );
    c.restart();
    assert_eq!(c.report("copy1")["db_uuid"], uuid1.as_str(), "not stable across a restart");
    assert_eq!(c.report("t")["db_uuid"], t["db_uuid"], "the template changed");
    assert_eq!(c.report("t")["exported_db_uuid"], t["exported_db_uuid"]);
}

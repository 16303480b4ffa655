//! The settings of SPEC §2: where they can be set, what the report makes of them, and clear
//! errors for bad values that leave the old value in force.

use crate::common::Cluster;

#[test]
fn level_from_alter_system_database_and_user_is_what_a_new_session_sees() {
    let c = Cluster::preloaded("");
    c.create_db_with_extension("app");
    c.psql("postgres", "CREATE ROLE alice LOGIN");
    assert_eq!(c.psql("app", "SHOW timescaledb.telemetry_level"), "basic");
    c.psql("postgres", "ALTER SYSTEM SET timescaledb.telemetry_level = 'no_functions'");
    c.reload();
    assert_eq!(c.psql("app", "SHOW timescaledb.telemetry_level"), "no_functions");
    c.psql("postgres", "ALTER DATABASE app SET timescaledb.telemetry_level = 'off'");
    assert_eq!(c.psql("app", "SHOW timescaledb.telemetry_level"), "off");
    assert_eq!(c.psql("postgres", "SHOW timescaledb.telemetry_level"), "no_functions");
    c.psql("postgres", "ALTER USER alice SET timescaledb.telemetry_level = 'basic'");
    assert_eq!(c.try_psql_as("app", "alice", "SHOW timescaledb.telemetry_level").unwrap(), "basic");
    assert_eq!(c.psql("app", "SHOW timescaledb.telemetry_level"), "off");
}

#[test]
fn last_tuned_settings_appear_after_alter_system_and_reload() {
    let c = Cluster::preloaded("");
    c.create_db_with_extension("app");
    let r = c.report("app");
    assert!(r.get("last_tuned_time").is_none() && r.get("last_tuned_version").is_none());
    c.psql("postgres", "ALTER SYSTEM SET timescaledb.last_tuned = '2026-11-01T10:00:00Z'");
    c.psql("postgres", "ALTER SYSTEM SET timescaledb.last_tuned_version = '0.18.0'");
    c.reload();
    let r = c.report("app");
    assert_eq!(r["last_tuned_time"], "2026-11-01T10:00:00Z");
    assert_eq!(r["last_tuned_version"], "0.18.0");
    // sighup context: a session cannot change them.
    let err = c.try_psql("app", "SET timescaledb.last_tuned = 'x'").unwrap_err();
    assert!(err.contains("cannot be changed now"), "{err}");
}

#[test]
fn license_edition_follows_the_license_setting() {
    let c = Cluster::preloaded("");
    c.create_db_with_extension("app");
    assert_eq!(c.report("app")["license"]["edition"], "community");
    let apache = c.psql(
        "app",
        "SET timescaledb.license = 'apache'; SELECT get_telemetry_report()->'license'->>'edition'",
    );
    assert_eq!(apache, "apache_only");
    c.psql("postgres", "ALTER SYSTEM SET timescaledb.license = 'apache'");
    c.reload();
    assert_eq!(c.report("app")["license"]["edition"], "apache_only");
    // superuser context: an ordinary role cannot set it.
    c.psql("postgres", "CREATE ROLE bob LOGIN");
    let err = c.try_psql_as("app", "bob", "SET timescaledb.license = 'timescale'").unwrap_err();
    assert!(err.contains("permission denied"), "{err}");
}

#[test]
fn cloud_setting_becomes_instance_metadata() {
    let c = Cluster::preloaded("timescaledb_telemetry.cloud = 'aws'");
    c.create_db_with_extension("app");
    assert_eq!(c.report("app")["instance_metadata"], serde_json::json!({"cloud": "aws"}));
    c.psql("postgres", "ALTER SYSTEM SET timescaledb_telemetry.cloud = ''");
    c.reload();
    assert!(c.report("app").get("instance_metadata").is_none());
}

#[test]
fn intervals_and_timeouts_take_units() {
    let c =
        Cluster::preloaded("timescaledb_telemetry.interval = '2s'\ntimescaledb_telemetry.timeout = '1min'");
    assert_eq!(c.psql("postgres", "SHOW timescaledb_telemetry.interval"), "2s");
    assert_eq!(c.psql("postgres", "SHOW timescaledb_telemetry.timeout"), "1min");
    assert_eq!(
        c.psql(
            "postgres",
            "RESET ALL; SELECT reset_val FROM pg_settings WHERE name = 'timescaledb_telemetry.interval'"
        ),
        "2"
    );
    assert_eq!(
        c.psql("postgres", "SELECT boot_val FROM pg_settings WHERE name = 'timescaledb_telemetry.interval'"),
        "86400"
    );
}

#[test]
fn bad_values_get_clear_errors_and_leave_the_old_value() {
    let c = Cluster::preloaded("");
    c.create_db_with_extension("app");

    let err = c.try_psql("app", "SET timescaledb.telemetry_level = 'loud'").unwrap_err();
    assert!(err.contains("invalid value for parameter \"timescaledb.telemetry_level\": \"loud\""), "{err}");
    assert!(err.contains("Available values: off, no_functions, basic"), "{err}");
    let err =
        c.try_psql("postgres", "ALTER DATABASE app SET timescaledb.telemetry_level = 'loud'").unwrap_err();
    assert!(err.contains("invalid value"), "{err}");
    assert_eq!(c.psql("app", "SHOW timescaledb.telemetry_level"), "basic");

    // A file URL names a directory on this machine: no host, an absolute path.
    for bad in ["ftp://example.com/metrics", "not a url", "file://elsewhere/dir", "file:relative/dir"] {
        let err = c
            .try_psql("postgres", &format!("ALTER SYSTEM SET timescaledb_telemetry.endpoint = '{bad}'"))
            .unwrap_err();
        assert!(err.contains("invalid value for parameter \"timescaledb_telemetry.endpoint\""), "{err}");
        assert!(err.contains("DETAIL"), "{err}");
    }
    c.reload();
    // The value in force stays (the harness's closed local port), and so does the default.
    assert_eq!(c.psql("postgres", "SHOW timescaledb_telemetry.endpoint"), "http://127.0.0.1:9/v1/metrics");
    assert_eq!(
        c.psql("postgres", "SELECT boot_val FROM pg_settings WHERE name = 'timescaledb_telemetry.endpoint'"),
        "https://telemetry.timescale.com/v1/metrics"
    );

    let err = c.try_psql("postgres", "ALTER SYSTEM SET timescaledb_telemetry.interval = '-5s'").unwrap_err();
    assert!(err.contains("outside the valid range"), "{err}");
    let err = c.try_psql("postgres", "ALTER SYSTEM SET timescaledb_telemetry.interval = 0").unwrap_err();
    assert!(err.contains("outside the valid range"), "{err}");
    assert_eq!(c.psql("postgres", "SHOW timescaledb_telemetry.interval"), "1d");

    // The prefix is reserved: a typo is an error, not a silent placeholder. (PostgreSQL 14
    // has no reserved prefixes: there it stays a placeholder, as for any extension.)
    let typo = c.try_psql("postgres", "SET timescaledb_telemetry.intervall = '1s'");
    let version: u32 = c.psql("postgres", "SHOW server_version_num").parse().unwrap();
    if version >= 150000 {
        let err = typo.unwrap_err();
        assert!(err.contains("invalid configuration parameter name"), "{err}");
    } else {
        assert!(typo.is_ok(), "{typo:?}");
    }
}

#[test]
fn a_bad_endpoint_in_the_configuration_file_keeps_the_old_value_on_reload() {
    let c = Cluster::preloaded("timescaledb_telemetry.endpoint = 'http://127.0.0.1:9/ok'");
    let conf = c.data.join("postgresql.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str("\ntimescaledb_telemetry.endpoint = 'gopher://nope'\n");
    std::fs::write(&conf, text).unwrap();
    c.reload();
    assert_eq!(c.psql("postgres", "SHOW timescaledb_telemetry.endpoint"), "http://127.0.0.1:9/ok");
    assert!(c.wait_for_log(std::time::Duration::from_secs(5), |log| log
        .contains("timescaledb_telemetry.endpoint")));
}

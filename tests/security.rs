//! SPEC §7: no role gains anything through this extension. Each test sets a trap as
//! `mallory`, a plain role that owns one database (the threat model's strongest untrusted
//! role), springs it through every way in — `get_telemetry_report()` called by mallory and
//! by a superuser, and the worker's collector (connected as a superuser) — and then checks
//! that mallory is no superuser and that the trap never ran, as anyone.

mod common;

use common::endpoint::{Answer, Endpoint};
use common::{wait_until, Cluster};
use std::time::{Duration, Instant};

const SOON: Duration = Duration::from_secs(15);

/// A function that, run as a superuser, makes mallory one; run as anyone, it leaves a trace
/// in `public.trap_hits`. It returns what the report looks for, so that a trap that ran
/// would also show in the counts.
const TRAP: &str = r#"
CREATE TABLE public.trap_hits (who text);
GRANT INSERT ON public.trap_hits TO PUBLIC;
CREATE FUNCTION public.trap() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.trap_hits VALUES (current_user);
    BEGIN
        EXECUTE 'ALTER ROLE mallory SUPERUSER';
    EXCEPTION WHEN OTHERS THEN NULL;
    END;
    RETURN 'policy_reorder';
END $$;
"#;

/// A preloaded cluster reporting to `ep`, with mallory owning the database `app` in which
/// `trap_sql` has been run as mallory; then `installer` creates the extension there.
fn trapped(ep: &Endpoint, trap_sql: &str, installer: &str) -> Cluster {
    let c = Cluster::reporting_to(ep, "1h", "timescaledb_telemetry.timeout = '2s'");
    c.psql("postgres", "CREATE ROLE mallory LOGIN");
    c.psql("postgres", "CREATE DATABASE app OWNER mallory");
    c.try_psql_as("app", "mallory", TRAP).unwrap();
    c.try_psql_as("app", "mallory", trap_sql).unwrap();
    c.try_psql_as("app", installer, "CREATE EXTENSION timescaledb_telemetry").unwrap();
    c
}

/// Springs the trap every way: mallory's call, a superuser's call, the worker's visit.
/// Returns the report the superuser saw.
fn spring(c: &Cluster, ep: &Endpoint) -> serde_json::Value {
    let _ = c.try_psql_as("app", "mallory", "SELECT get_telemetry_report()");
    let report = c.report("app");
    // The collector has visited once the report arrives (or its failure is logged).
    let visited = wait_until(SOON, || {
        ep.count() >= 1 || c.server_log().contains("telemetry report for database \"app\" failed")
    });
    assert!(visited, "the worker never visited app, so it was not tried:\n{}", c.server_log());
    report
}

fn assert_unharmed(c: &Cluster) {
    assert_eq!(c.psql("postgres", "SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'"), "f");
    // Qualified, and without operators: mallory may have put some on app's search path.
    assert_eq!(c.psql("app", "SELECT pg_catalog.count(*) FROM public.trap_hits"), "0", "the trap ran");
}

#[test]
fn a_view_named_like_a_timescaledb_catalog_table_is_never_read() {
    // The way in of issue 8: a view where the report counts TimescaleDB's jobs.
    let view = "CREATE SCHEMA _timescaledb_config;
                CREATE VIEW _timescaledb_config.bgw_job AS SELECT public.trap() AS proc_name;";
    for installer in ["postgres", "mallory"] {
        let ep = Endpoint::start(Answer::version("0.1.0"));
        let c = trapped(&ep, view, installer);
        let report = spring(&c, &ep);
        assert_unharmed(&c);
        assert_eq!(report["num_reorder_policies"], "0", "installed by {installer}");
    }
}

#[test]
fn tables_and_inheritance_under_timescaledb_names_are_not_counted() {
    let ep = Endpoint::start(Answer::version("0.1.0"));
    let tables = "CREATE SCHEMA _timescaledb_config;
                  CREATE TABLE _timescaledb_config.bgw_job (proc_name text);
                  CREATE TABLE public.more_jobs () INHERITS (_timescaledb_config.bgw_job);
                  INSERT INTO public.more_jobs VALUES ('policy_reorder'), ('policy_retention');
                  CREATE TABLE public.parts (id int) PARTITION BY RANGE (id);
                  CREATE TABLE public.part1 PARTITION OF public.parts FOR VALUES FROM (0) TO (10);";
    let c = trapped(&ep, tables, "postgres");
    let report = spring(&c, &ep);
    assert_unharmed(&c);
    assert_eq!(report["num_reorder_policies"], "0");
    assert_eq!(report["num_drop_chunks_policies"], "0");
    // The worker's copy says the same.
    assert_eq!(ep.requests()[0].json()["num_drop_chunks_policies"], "0");
}

/// mallory shadows pg_catalog's `name = name`, `oid = oid` and `oid < integer` with her
/// own, and puts her schema before pg_catalog for every session in `db`, the worker's
/// included.
fn shadowing_operators(db: &str) -> String {
    format!(
        "CREATE FUNCTION public.name_eq(name, name) RETURNS boolean LANGUAGE plpgsql AS $$
         BEGIN PERFORM public.trap(); RETURN pg_catalog.nameeq($1, $2); END $$;
         CREATE OPERATOR public.= (LEFTARG = name, RIGHTARG = name, FUNCTION = public.name_eq);
         CREATE FUNCTION public.oid_eq(oid, oid) RETURNS boolean LANGUAGE plpgsql AS $$
         BEGIN PERFORM public.trap(); RETURN pg_catalog.oideq($1, $2); END $$;
         CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = public.oid_eq);
         CREATE FUNCTION public.oid_lt(oid, integer) RETURNS boolean LANGUAGE plpgsql AS $$
         BEGIN PERFORM public.trap(); RETURN pg_catalog.oidlt($1, $2::pg_catalog.oid); END $$;
         CREATE OPERATOR public.< (LEFTARG = oid, RIGHTARG = integer, FUNCTION = public.oid_lt);
         ALTER DATABASE {db} SET search_path = public, pg_catalog;"
    )
}

#[test]
fn operators_on_the_databases_search_path_are_never_used() {
    let ep = Endpoint::start(Answer::version("0.1.0"));
    let c = trapped(&ep, &shadowing_operators("app"), "postgres");
    let report = spring(&c, &ep);
    assert_unharmed(&c);
    assert!(report["db_uuid"].is_string());
    // Function usage was named too (by sql/function_names.sql, which compares oids).
    assert_ne!(report["functions_used"], serde_json::json!({}), "{report}");
    assert_eq!(ep.requests()[0].json()["db_uuid"], report["db_uuid"], "the worker's report failed");
}

#[test]
fn a_copys_own_uuid_is_written_without_using_the_owners_operators() {
    // The worker writes a copy's uuid into it (an UPDATE comparing names), connected as a
    // superuser, in a database whose owner set its search path to her operators.
    let ep = Endpoint::start(Answer::version("0.1.0"));
    let c = trapped(&ep, &shadowing_operators("app"), "postgres");
    spring(&c, &ep);
    c.psql("postgres", "ALTER ROLE mallory CREATEDB");
    c.try_psql_as("postgres", "mallory", "CREATE DATABASE copy TEMPLATE app").unwrap();
    c.try_psql_as("copy", "mallory", "ALTER DATABASE copy SET search_path = public, pg_catalog").unwrap();
    let copy_uuid = c.report("copy")["db_uuid"].as_str().unwrap().to_string();
    // A CREATE EXTENSION elsewhere wakes the launcher, which then finds the copy.
    c.create_db_with_extension("other");
    let settled = "SELECT value FROM _timescaledb_catalog.metadata WHERE key OPERATOR(pg_catalog.=) 'uuid'";
    assert!(
        wait_until(SOON, || c.psql("copy", settled) == copy_uuid),
        "the worker did not record the copy's uuid:\n{}",
        c.server_log()
    );
    assert_unharmed(&c);
    assert_eq!(c.psql("copy", "SELECT pg_catalog.count(*) FROM public.trap_hits"), "0", "the trap ran in the copy");
}

#[test]
fn a_slow_view_and_held_locks_delay_nothing() {
    let ep = Endpoint::start(Answer::version("0.1.0"));
    let slow = "CREATE SCHEMA _timescaledb_config;
                CREATE VIEW _timescaledb_config.bgw_job AS
                    SELECT 'policy_reorder'::text AS proc_name FROM pg_catalog.pg_sleep(20);
                CREATE TABLE public.mine (id int);";
    let c = trapped(&ep, slow, "postgres");
    // mallory holds her own table for 20 s.
    let mut holder = c
        .client("psql", "mallory")
        .args(["-X", "-q", "-d", "app", "-c"])
        .arg("BEGIN; LOCK TABLE public.mine IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(20)")
        .spawn()
        .unwrap();
    assert!(wait_until(SOON, || {
        c.psql("postgres", "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE a.usename = 'mallory' AND l.mode = 'AccessExclusiveLock' AND l.granted") == "1"
    }));
    let start = Instant::now();
    let report = c.try_psql_as("app", "mallory", "SELECT get_telemetry_report()->>'num_reorder_policies'");
    assert_eq!(report.as_deref(), Ok("0"));
    assert!(start.elapsed() < Duration::from_secs(5), "the report waited {:?}", start.elapsed());
    // The worker reports app, then another database, without waiting for mallory.
    assert!(ep.wait_for(1, Duration::from_secs(8)), "app was not reported while mallory held her locks");
    c.create_db_with_extension("other");
    let other = c.report("other")["db_uuid"].as_str().unwrap().to_string();
    assert!(wait_until(Duration::from_secs(8), || !ep.requests_for(&other).is_empty()));
    // DDL on the reported database is not held up either.
    let start = Instant::now();
    c.psql("postgres", "CREATE DATABASE other_copy TEMPLATE other");
    c.psql("postgres", "ALTER DATABASE other RENAME TO other_renamed");
    assert!(start.elapsed() < Duration::from_secs(5), "DDL waited {:?}", start.elapsed());
    let _ = holder.kill();
    let _ = holder.wait();
    assert_unharmed(&c);
}

#[test]
fn a_database_owner_can_neither_redirect_reports_nor_read_the_status_nor_rewrite_metadata() {
    let ep = Endpoint::start(Answer::version("0.1.0"));
    let c = trapped(&ep, "SELECT 1", "mallory");
    let elsewhere = "http://127.0.0.1:9/elsewhere";
    // Only a warning ("no privileges were granted"): mallory owns the extension, not the
    // function. The refusal below shows it granted nothing.
    let _ = c.try_psql_as("app", "mallory", "GRANT EXECUTE ON FUNCTION get_telemetry_status() TO mallory");
    for sql in [
        format!("ALTER DATABASE app SET timescaledb_telemetry.endpoint = '{elsewhere}'"),
        format!("ALTER ROLE mallory SET timescaledb_telemetry.endpoint = '{elsewhere}'"),
        format!("ALTER SYSTEM SET timescaledb_telemetry.endpoint = '{elsewhere}'"),
        format!("SELECT set_config('timescaledb_telemetry.endpoint', '{elsewhere}', false)"),
        "ALTER DATABASE app SET timescaledb_telemetry.cloud = 'x'".to_string(),
        "SELECT * FROM get_telemetry_status()".to_string(),
        "UPDATE _timescaledb_catalog.metadata SET value = 'x'".to_string(),
        "DELETE FROM _timescaledb_catalog.metadata".to_string(),
        "TRUNCATE _timescaledb_catalog.metadata".to_string(),
        "ALTER TABLE _timescaledb_catalog.metadata ADD COLUMN x int".to_string(),
        "CREATE TABLE _timescaledb_catalog.hypertable (id int)".to_string(),
        "SELECT _timescaledb_catalog.wake_telemetry_launcher()".to_string(),
        // Through the restore trigger, only exported_uuid and install_timestamp can be
        // replaced; the uuid keeps its primary key.
        "INSERT INTO _timescaledb_catalog.metadata VALUES ('uuid', 'x', true)".to_string(),
    ] {
        let result = c.try_psql_as("app", "mallory", &sql);
        assert!(result.is_err(), "mallory could run: {sql}");
    }
    c.reload();
    assert!(ep.wait_for(1, SOON), "{}", c.server_log());
    let status = c.psql("app", "SELECT endpoint FROM get_telemetry_status()");
    assert_eq!(status, ep.url());
}

#[test]
fn a_schema_made_beforehand_does_not_receive_the_catalog() {
    let ep = Endpoint::start(Answer::version("0.1.0"));
    let c = Cluster::reporting_to(&ep, "24h", "");
    c.psql("postgres", "CREATE ROLE mallory LOGIN");
    c.psql("postgres", "CREATE DATABASE app OWNER mallory");
    c.try_psql_as("app", "mallory", "CREATE SCHEMA _timescaledb_catalog").unwrap();
    let err = c.try_psql("app", "CREATE EXTENSION timescaledb_telemetry").unwrap_err();
    assert!(err.contains("_timescaledb_catalog"), "{err}");
    assert_eq!(
        c.psql("app", "SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb_telemetry'"),
        "0"
    );
}

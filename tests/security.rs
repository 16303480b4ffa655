//! SPEC §7: no role gains anything through this extension. Each test sets a trap as
//! `mallory`, a plain role that owns one database (the threat model's strongest untrusted
//! role), springs it through every way in — `get_telemetry_report()` called by mallory and
//! by a superuser, and the worker's collector (connected as a superuser) — and then checks
//! that mallory is no superuser and that the trap never ran, as anyone.

use crate::common::endpoint::{Answer, Endpoint};
use crate::common::{wait_until, Cluster};
use std::time::{Duration, Instant};

const SOON: Duration = Duration::from_secs(15);

/// A function that, run as a superuser, makes mallory one; run as anyone, it leaves traces
/// that no rollback undoes (SPEC §7): a `nextval` of `public.trap_hits` and a `RAISE LOG`
/// line in the server log. It returns what the report looks for, so that a trap that ran
/// would also show in the counts.
const TRAP: &str = r#"
CREATE SEQUENCE public.trap_hits;
GRANT USAGE ON SEQUENCE public.trap_hits TO PUBLIC;
CREATE FUNCTION public.trap() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_catalog.nextval('public.trap_hits'::pg_catalog.regclass);
    RAISE LOG 'trap sprung as %', current_user;
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
    let own = c.try_psql_as("app", "mallory", "SELECT get_telemetry_report() ? 'db_uuid'");
    assert_eq!(own.as_deref(), Ok("t"), "mallory's own call failed");
    let report = c.report("app");
    // The collector has visited once the report arrives (or its failure is logged).
    let visited = wait_until(SOON, || {
        ep.count() >= 1 || c.server_log().contains("telemetry report for database \"app\" failed")
    });
    assert!(visited, "the worker never visited app, so it was not tried:\n{}", c.server_log());
    report
}

/// Whether the trap left a trace in `db`: its sequence was advanced (even by a statement
/// that was rolled back) or its log line was written (in any database).
fn trap_sprung(c: &Cluster, db: &str) -> bool {
    // Qualified, and without operators: mallory may have put some on the search path.
    c.psql(db, "SELECT is_called FROM public.trap_hits") != "f" || c.server_log().contains("trap sprung")
}

fn assert_unharmed(c: &Cluster) {
    assert_eq!(c.psql("postgres", "SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'"), "f");
    assert!(!trap_sprung(c, "app"), "the trap ran:\n{}", c.server_log());
}

#[test]
fn a_trap_that_ran_is_found_even_when_its_statement_rolled_back() {
    // The check of every test below: it must see a trap that ran inside a failed statement.
    let c = Cluster::plain("");
    c.psql("postgres", "CREATE ROLE mallory LOGIN");
    c.psql("postgres", "CREATE DATABASE app OWNER mallory");
    c.try_psql_as("app", "mallory", TRAP).unwrap();
    assert!(!trap_sprung(&c, "app"));
    let failed = c.try_psql_as("app", "mallory", "SELECT 1 / (pg_catalog.length(public.trap()) - 14)");
    assert!(failed.is_err());
    assert!(trap_sprung(&c, "app"), "a rolled-back trap left nothing to find");
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
    // Function usage is named too (by lookups by oid: no operator is involved). Counted
    // now, after the worker collected: the worker's accepted report cannot take it away.
    c.try_psql_as("app", "mallory", "SELECT pg_catalog.upper('x')").unwrap();
    let used = c.report("app");
    assert_eq!(used["functions_used"]["pg_catalog.upper(text)"], "1", "{used}");
    assert_unharmed(&c);
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
    assert!(!trap_sprung(&c, "copy"), "the trap ran in the copy");
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
    // A superuser's long transaction holding our own table in `other` (an accident, not an
    // attack): the collector, woken for `other`, gives up after its lock_timeout (2 s) with
    // one line; without that bound it would wait for its 60 s statement timeout.
    let mut dba = c.hold_metadata("other", 60);
    c.psql("other", "SELECT _timescaledb_catalog.wake_telemetry_launcher()");
    let gave_up = wait_until(Duration::from_secs(15), || {
        c.server_log().contains("telemetry report for database \"other\" failed")
    });
    // Its backend goes too (killing psql alone would leave it sleeping in `other`).
    c.psql(
        "postgres",
        "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity
         WHERE datname = 'other' AND backend_type = 'client backend'",
    );
    let _ = dba.kill();
    let _ = dba.wait();
    assert!(gave_up, "the collector waited for the lock:\n{}", c.server_log());
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
    // The endpoint and cloud are configuration-file settings: no session, database or role
    // may hold one.
    let file_only = "cannot be changed now";
    let mut wrong = Vec::new();
    for (sql, why) in [
        (format!("ALTER DATABASE app SET timescaledb_telemetry.endpoint = '{elsewhere}'"), file_only),
        (format!("ALTER ROLE mallory SET timescaledb_telemetry.endpoint = '{elsewhere}'"), file_only),
        (
            format!("ALTER SYSTEM SET timescaledb_telemetry.endpoint = '{elsewhere}'"),
            // PostgreSQL 14 refuses ALTER SYSTEM itself; 15 on, the parameter.
            if crate::common::major() < 15 {
                "must be superuser"
            } else {
                "permission denied to set parameter"
            },
        ),
        (format!("SELECT set_config('timescaledb_telemetry.endpoint', '{elsewhere}', false)"), file_only),
        ("ALTER DATABASE app SET timescaledb_telemetry.cloud = 'x'".to_string(), file_only),
        // mallory owns the extension, not its functions.
        (
            "GRANT EXECUTE ON FUNCTION get_telemetry_status() TO mallory".to_string(),
            "permission denied for function get_telemetry_status",
        ),
        (
            "SELECT * FROM get_telemetry_status()".to_string(),
            "permission denied for function get_telemetry_status",
        ),
        (
            "UPDATE _timescaledb_catalog.metadata SET value = 'x'".to_string(),
            "permission denied for table metadata",
        ),
        ("DELETE FROM _timescaledb_catalog.metadata".to_string(), "permission denied for table metadata"),
        ("TRUNCATE _timescaledb_catalog.metadata".to_string(), "permission denied for table metadata"),
        (
            "ALTER TABLE _timescaledb_catalog.metadata ADD COLUMN x int".to_string(),
            "must be owner of table metadata",
        ),
        (
            "CREATE TABLE _timescaledb_catalog.hypertable (id int)".to_string(),
            "permission denied for schema _timescaledb_catalog",
        ),
        (
            "SELECT _timescaledb_catalog.wake_telemetry_launcher()".to_string(),
            "permission denied for function wake_telemetry_launcher",
        ),
        // Through the restore trigger, only exported_uuid and install_timestamp can be
        // replaced; the uuid keeps its primary key.
        (
            "INSERT INTO _timescaledb_catalog.metadata VALUES ('uuid', 'x', true)".to_string(),
            "duplicate key value violates unique constraint",
        ),
    ] {
        match c.try_psql_as("app", "mallory", &sql) {
            Ok(out) => wrong.push(format!("mallory could run: {sql}\n{out}")),
            Err(e) if !e.contains(why) => wrong.push(format!("{sql}: not \"{why}\" but {e}")),
            Err(_) => {}
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    c.reload();
    assert!(ep.wait_for(1, SOON), "{}", c.server_log());
    let status = c.psql("app", "SELECT endpoint FROM get_telemetry_status()");
    assert_eq!(status, ep.url());
}

/// The restore trigger runs as the superuser that created the extension (so that an owner
/// can restore her dump), called by mallory's INSERT with her own `name = name` first on
/// her session's search path.
#[test]
fn the_restore_trigger_never_uses_the_inserters_operators() {
    let ep = Endpoint::start(Answer::version("0.1.0"));
    let c = trapped(&ep, &shadowing_operators("app"), "postgres");
    let restored = "00000000-0000-4000-8000-000000000001";
    c.try_psql_as(
        "app",
        "mallory",
        &format!(
            "SET search_path = public, pg_catalog;
             INSERT INTO _timescaledb_catalog.metadata VALUES ('exported_uuid', '{restored}', true)"
        ),
    )
    .unwrap();
    // The trigger did its work (the dumped value replaced the fresh one) and nothing of hers.
    let exported =
        "SELECT value FROM _timescaledb_catalog.metadata WHERE key OPERATOR(pg_catalog.=) 'exported_uuid'";
    assert_eq!(c.psql("app", exported), restored);
    assert_unharmed(&c);
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

/// The parameter that makes every query plan parallel: renamed in PostgreSQL 16.
fn debug_parallel_query() -> &'static str {
    if crate::common::major() >= 16 {
        "debug_parallel_query"
    } else {
        "force_parallel_mode"
    }
}

#[test]
fn the_databases_defaults_decide_nothing_about_the_collectors_session() {
    // SPEC §5 "The collector's session is ours": settings mallory gives every session of
    // her database, the collector's included.
    let ep = Endpoint::start(Answer::version("0.1.0"));
    let c =
        Cluster::reporting_to(&ep, "1h", "timescaledb_telemetry.timeout = '2s'\nlog_min_messages = debug1");
    c.psql("postgres", "CREATE ROLE mallory LOGIN");
    c.psql("postgres", "CREATE DATABASE app OWNER mallory");
    c.try_psql_as("app", "mallory", TRAP).unwrap();
    // A serializable read-write transaction stays open elsewhere: a deferrable read-only
    // serializable transaction waits for it to end before it may take its snapshot.
    let mut holder = c
        .client("psql", "postgres")
        .args(["-X", "-q", "-d", "postgres", "-c"])
        .arg("BEGIN ISOLATION LEVEL SERIALIZABLE; SELECT pg_catalog.txid_current(); SELECT pg_catalog.pg_sleep(60)")
        .spawn()
        .unwrap();
    assert!(wait_until(SOON, || {
        c.psql(
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'BEGIN ISOLATION%' AND state = 'active'",
        ) == "1"
    }));
    let parallel = debug_parallel_query();
    let settings = format!(
        "ALTER DATABASE app SET default_transaction_isolation = serializable;
         ALTER DATABASE app SET default_transaction_read_only = on;
         ALTER DATABASE app SET default_transaction_deferrable = on;
         ALTER DATABASE app SET role = mallory;
         ALTER DATABASE app SET session_authorization = mallory;
         ALTER DATABASE app SET {parallel} = on;
         ALTER DATABASE app SET parallel_setup_cost = 0;
         ALTER DATABASE app SET parallel_tuple_cost = 0;
         ALTER DATABASE app SET min_parallel_table_scan_size = 0;
         ALTER DATABASE app SET exit_on_error = on;
         ALTER DATABASE app SET search_path = public, pg_catalog;"
    );
    // Set before the extension exists, so the first visit already meets them (CREATE
    // EXTENSION itself runs in a session of postgres's own defaults).
    c.try_psql_as("app", "mallory", &settings).unwrap();
    // The test's own sessions in app set the usual values back at connection.
    let as_postgres = |sql: &str| {
        let out = c
            .client("psql", "postgres")
            .env(
                "PGOPTIONS",
                format!(
                    "-c default_transaction_read_only=off -c default_transaction_deferrable=off \
                     -c default_transaction_isolation=read\\ committed -c role=none -c {parallel}=off -c max_parallel_workers_per_gather=0"
                ),
            )
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", "app", "-c", sql])
            .output()
            .unwrap();
        assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    as_postgres("CREATE EXTENSION timescaledb_telemetry");
    let uuid = as_postgres("SELECT value FROM _timescaledb_catalog.metadata WHERE key = 'uuid'");
    // Reported while the serializable transaction is still open, and as the superuser: a
    // session of mallory's could not have read what the report needs.
    assert!(
        wait_until(SOON, || !ep.requests_for(&uuid).is_empty()),
        "app was not reported while a serializable transaction was open:\n{}",
        c.server_log()
    );
    // (The status is written once the launcher has handled the answer, a moment after the
    // request arrived.)
    let status = "SELECT last_status, last_error IS NULL FROM get_telemetry_status()";
    assert!(
        wait_until(SOON, || as_postgres(status) == "200|t"),
        "{}: {}",
        as_postgres(status),
        c.server_log()
    );
    // Its function usage was named, which reads pg_authid: only a superuser can.
    let sent = ep.requests_for(&uuid)[0].json();
    assert_ne!(sent["functions_used"], serde_json::json!({}), "{sent}");
    // No collector started a parallel worker (the postmaster logs each start at DEBUG1,
    // naming the process it works for).
    let log = c.server_log();
    let collectors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("background worker \"timescaledb_telemetry collector\" (PID "))
        .filter_map(|l| l.split("(PID ").nth(1)?.split(')').next())
        .collect();
    assert!(!collectors.is_empty(), "no collector ran:\n{log}");
    for pid in collectors {
        let worker = format!("parallel worker for PID {pid}\"");
        assert!(!log.contains(&worker), "the collector {pid} started parallel workers:\n{log}");
    }
    // And DROP DATABASE of app is not held up by a parked collector.
    c.psql("postgres", "DROP DATABASE app");
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(!c.server_log().contains("trap sprung"));
}

/// Visits of database `db` so far, by the launcher's DEBUG1 line for each (a collector's
/// work is not counted in the database's statistics).
fn visits(c: &Cluster, db: &str) -> usize {
    let oid = c.psql("postgres", &format!("SELECT oid FROM pg_database WHERE datname = '{db}'"));
    c.server_log().matches(&format!("visiting database {oid} (")).count()
}

#[test]
fn a_loop_of_create_and_drop_extension_costs_other_databases_nothing() {
    // SPEC §5: at most one visit of each other database per 10 s (the issue: every commit of
    // CREATE EXTENSION made the launcher look at every database without it again).
    let ep = Endpoint::start(Answer::version("0.1.0"));
    let c = Cluster::reporting_to(&ep, "1h", "autovacuum = off\nlog_min_messages = debug1");
    c.psql("postgres", "CREATE ROLE mallory LOGIN");
    c.psql("postgres", "CREATE DATABASE app OWNER mallory");
    c.psql("postgres", "CREATE DATABASE bystander");
    // The first visits (all databases are looked at after start) are over once app's
    // report, woken by its CREATE EXTENSION, has arrived.
    c.try_psql_as("app", "mallory", "CREATE EXTENSION timescaledb_telemetry").unwrap();
    let first = c.report("app")["db_uuid"].as_str().unwrap().to_string();
    assert!(wait_until(SOON, || !ep.requests_for(&first).is_empty()));
    // The bystander's own first visit (it was created after start) is over and counted.
    assert!(wait_until(SOON, || visits(&c, "bystander") > 0), "the bystander was never visited");
    let before = visits(&c, "bystander");
    let start = Instant::now();
    for _ in 0..20 {
        c.try_psql_as("app", "mallory", "DROP EXTENSION timescaledb_telemetry").unwrap();
        c.try_psql_as("app", "mallory", "CREATE EXTENSION timescaledb_telemetry").unwrap();
    }
    let last = c.report("app")["db_uuid"].as_str().unwrap().to_string();
    // The launcher handled the wake-ups (it reported the last uuid) ...
    assert!(wait_until(SOON, || !ep.requests_for(&last).is_empty()), "{}", c.server_log());
    let spent = start.elapsed().as_secs_f64();
    // ... and looked at the bystander at most once per 10 s meanwhile (plus one).
    let visited = visits(&c, "bystander") - before;
    let allowed = (spent / 10.0).ceil() as usize + 1;
    assert!(visited <= allowed, "{visited} visits of a bystander database in {spent:.1} s");
}

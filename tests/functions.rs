//! SPEC §4.1: `functions_used`, counted by the planner hook in shared memory, per database,
//! shown without a reset, subtracted by the worker exactly as acknowledged, bounded, and
//! never naming a user's function or schema.

use crate::common::endpoint::{Answer, Endpoint};
use crate::common::{bin, wait_until, Cluster};
use serde_json::Value;
use std::time::Duration;

const SOON: Duration = Duration::from_secs(15);

const UPPER: &str = "pg_catalog.upper(text)";

fn used(c: &Cluster, db: &str) -> Value {
    c.report(db)["functions_used"].clone()
}

/// `functions_used.<key>` of `db` as `user` (at that user's own level).
fn used_as(c: &Cluster, db: &str, user: &str, key: &str) -> String {
    c.try_psql_as(db, user, &format!("SELECT get_telemetry_report()->'functions_used'->>'{key}'")).unwrap()
}

/// 42 calls of distinct built-ins.
const BUILTINS: [&str; 42] = [
    "abs(-1)",
    "sqrt(4)",
    "cbrt(8)",
    "ceil(1.5)",
    "floor(1.5)",
    "round(1.5)",
    "trunc(1.5)",
    "exp(1)",
    "ln(2)",
    "log(2.0)",
    "pi()",
    "power(2, 3)",
    "sign(-2)",
    "degrees(1)",
    "radians(1)",
    "sin(1)",
    "cos(1)",
    "tan(1)",
    "asin(1)",
    "acos(1)",
    "atan(1)",
    "lower('A')",
    "initcap('a')",
    "length('a')",
    "reverse('a')",
    "repeat('a', 2)",
    "md5('a')",
    "ascii('a')",
    "chr(65)",
    "btrim(' a ')",
    "ltrim(' a')",
    "rtrim('a ')",
    "lpad('a', 2)",
    "rpad('a', 2)",
    "left('ab', 1)",
    "right('ab', 1)",
    "strpos('ab', 'b')",
    "split_part('a,b', ',', 1)",
    "translate('a', 'a', 'b')",
    "to_hex(10)",
    "quote_ident('a')",
    "now()",
];

/// One statement calling each of `calls`.
fn fill(calls: &[&str]) -> String {
    calls.iter().map(|f| format!("SELECT {f}")).collect::<Vec<_>>().join("; ")
}

fn repeat(sql: &str, n: usize) -> String {
    vec![sql; n].join("; ")
}

#[test]
fn each_planning_counts_its_functions_once_per_database_and_reading_resets_nothing() {
    let c = Cluster::preloaded("");
    c.create_db_with_extension("a");
    c.create_db_with_extension("b");
    // Five plannings that use upper: nested twice, in a sublink, in a CTE.
    c.psql(
        "a",
        "SELECT upper('x'); SELECT upper('y'); SELECT upper(upper('z')); \
         SELECT 1 WHERE EXISTS (SELECT upper('w')); WITH q AS (SELECT upper('v')) SELECT * FROM q",
    );
    // Each EXECUTE of a prepared statement is planned (custom plans, the first five times).
    c.psql("a", "PREPARE p(text) AS SELECT lower($1); EXECUTE p('A'); EXECUTE p('B'); EXECUTE p('C')");
    let first = used(&c, "a");
    assert_eq!(first[UPPER], "5", "{first}");
    assert_eq!(first["pg_catalog.lower(text)"], "3", "{first}");
    assert_eq!(used(&c, "a"), first, "reading the report changed the counts");
    assert!(used(&c, "b").get(UPPER).is_none(), "a's usage showed up in b");

    // Aggregates, window functions and the functions behind operators, = ANY, IS DISTINCT
    // FROM and NULLIF: a type of its own for each node kind, so that each has its own key.
    c.psql(
        "b",
        "SELECT sum(x), row_number() OVER () FROM (VALUES (1, 1::int8, 'a'::text, 1.5::float8)) v(x, y, t, f) \
         WHERE x <> 3 AND y = ANY ('{1,2}'::int8[]) AND t IS DISTINCT FROM 'b' AND NULLIF(f, 5.5) IS NOT NULL \
         GROUP BY x",
    );
    let b = used(&c, "b");
    for key in [
        "pg_catalog.sum(integer)",
        "pg_catalog.row_number()",
        "pg_catalog.int4ne(integer,integer)",
        "pg_catalog.int8eq(bigint,bigint)",
        "pg_catalog.texteq(text,text)",
        "pg_catalog.float8eq(double precision,double precision)",
    ] {
        assert_eq!(b[key], "1", "{key} in {b}");
    }
}

/// The extended protocol (Parse/Bind/Execute, what drivers use): an unnamed statement is
/// planned at each execution; a prepared one without parameters once (a generic plan).
#[test]
fn the_extended_protocol_counts_each_planning() {
    let c = Cluster::preloaded("");
    c.create_db_with_extension("a");
    let script = c.dir.join("upper.sql");
    std::fs::write(&script, "SELECT upper('x');\n").unwrap();
    for (mode, expected) in [("extended", 3), ("prepared", 4)] {
        let out = c
            .client("pgbench", "postgres")
            .args(["-n", "-t", "3", "-M", mode, "-f"])
            .arg(&script)
            .arg("a")
            .output()
            .unwrap();
        assert!(out.status.success(), "pgbench -M {mode}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(used(&c, "a")[UPPER], expected.to_string(), "after pgbench -M {mode}");
    }
}

#[test]
fn sessions_below_basic_count_nothing_and_reports_below_basic_carry_no_functions_used() {
    let ep = Endpoint::start(Answer::version("0.1.0"));
    let c = Cluster::reporting_to(&ep, "1h", "");
    c.create_db_with_extension("a");
    c.psql(
        "a",
        "SET timescaledb.telemetry_level = no_functions; SELECT upper('x'); \
         SET timescaledb.telemetry_level = off; SELECT upper('y')",
    );
    assert!(used(&c, "a").get(UPPER).is_none(), "counted below basic");
    assert_eq!(
        c.psql("a", "SET timescaledb.telemetry_level = no_functions; SELECT get_telemetry_report() ? 'functions_used'"),
        "f"
    );

    // The worker: b's level (its owner's) is no_functions; its sessions at basic still count.
    c.psql("postgres", "CREATE DATABASE b");
    c.psql("postgres", "ALTER DATABASE b SET timescaledb.telemetry_level = no_functions");
    c.psql(
        "b",
        "CREATE EXTENSION timescaledb_telemetry; SET timescaledb.telemetry_level = basic; SELECT upper('x')",
    );
    let (ua, ub) = (c.report("a")["db_uuid"].clone(), c.report("b")["db_uuid"].clone());
    assert!(wait_until(Duration::from_secs(20), || {
        !ep.requests_for(ua.as_str().unwrap()).is_empty() && !ep.requests_for(ub.as_str().unwrap()).is_empty()
    }));
    assert!(ep.requests_for(ua.as_str().unwrap())[0].json().get("functions_used").is_some());
    assert!(ep.requests_for(ub.as_str().unwrap())[0].json().get("functions_used").is_none());
    // b's count stays: no report carried it, so none took it away (read once b's answer was
    // handled: an accepted report's counts are subtracted before its status is saved).
    c.wait_settled("b");
    let b_at_basic = "SET timescaledb.telemetry_level = basic;
                      SELECT get_telemetry_report()->'functions_used'->>'pg_catalog.upper(text)'";
    assert_eq!(c.psql("b", b_at_basic), "1");
}

#[test]
fn an_accepted_report_subtracts_exactly_what_it_carried_from_its_own_database_only() {
    let ep = Endpoint::start(Answer::version("0.1.0"));
    let c = Cluster::reporting_to(&ep, "1h", "timescaledb_telemetry.timeout = '60s'");
    c.create_db_with_extension("a");
    // b never reports (its owner's level is off); bob's sessions there count.
    c.psql("postgres", "CREATE DATABASE b");
    c.psql(
        "postgres",
        "CREATE ROLE bob LOGIN; ALTER ROLE postgres IN DATABASE b SET timescaledb.telemetry_level = off",
    );
    c.psql("b", "CREATE EXTENSION timescaledb_telemetry");
    let ua = c.report("a")["db_uuid"].as_str().unwrap().to_string();
    assert!(wait_until(Duration::from_secs(15), || ep.requests_for(&ua).len() == 1), "a's first report");

    c.psql("a", &repeat("SELECT upper('x')", 3));
    c.try_psql_as("b", "bob", &repeat("SELECT upper('x')", 2)).unwrap();
    // Report a again now, and hold the answer.
    ep.hold_answers();
    c.psql("postgres", "ALTER SYSTEM SET timescaledb_telemetry.interval = '2s'");
    c.reload();
    assert!(wait_until(Duration::from_secs(15), || ep.requests_for(&ua).len() == 2), "a's second report");
    assert_eq!(ep.requests_for(&ua)[1].json()["functions_used"][UPPER], "3");
    // Counted while the request is in flight: kept for the next report.
    c.psql("a", &repeat("SELECT upper('x')", 4));
    // No third report: the next one is an hour away once this one is answered.
    c.psql("postgres", "ALTER SYSTEM SET timescaledb_telemetry.interval = '1h'");
    c.reload();
    std::thread::sleep(Duration::from_secs(1));
    ep.release_answers();
    assert!(
        wait_until(Duration::from_secs(10), || used(&c, "a")[UPPER] == "4"),
        "a shows {} after the accepted report, not the 4 calls made meanwhile",
        used(&c, "a")
    );
    assert_eq!(used_as(&c, "b", "bob", UPPER), "2", "b's counts were drained by a's report");
    assert_eq!(ep.requests_for(&ua).len(), 2);
}

#[test]
fn a_refused_report_subtracts_nothing() {
    let ep = Endpoint::start(Answer::json(503, "{}"));
    let c = Cluster::reporting_to(&ep, "24h", "");
    c.psql("postgres", "CREATE DATABASE a");
    c.psql("a", &format!("CREATE EXTENSION timescaledb_telemetry; {}", repeat("SELECT upper('x')", 2)));
    let before = used(&c, "a");
    assert!(ep.wait_for(1, Duration::from_secs(15)));
    assert_eq!(ep.requests()[0].json()["functions_used"][UPPER], "2");
    assert!(wait_until(Duration::from_secs(10), || c
        .psql("a", "SELECT last_status FROM get_telemetry_status()")
        == "503"));
    assert_eq!(used(&c, "a"), before);
}

#[test]
fn user_functions_take_no_space_and_a_full_table_says_so_for_its_database_only() {
    let c = Cluster::preloaded("timescaledb_telemetry.max_tracked_functions = 40");
    c.create_db_with_extension("a");
    c.create_db_with_extension("b");
    c.psql("postgres", "CREATE ROLE mallory LOGIN; ALTER DATABASE a OWNER TO mallory");
    // 100 functions of a user, in a schema of hers: none is counted or stored.
    let mut ddl = String::from("CREATE SCHEMA customer_secrets;");
    let mut calls = Vec::new();
    for i in 0..100 {
        ddl.push_str(&format!(
            "CREATE FUNCTION customer_secrets.acme_payroll_{i}(int) RETURNS int LANGUAGE sql AS 'SELECT $1';"
        ));
        calls.push(format!("SELECT customer_secrets.acme_payroll_{i}(1)"));
    }
    c.try_psql_as("a", "mallory", &ddl).unwrap();
    c.try_psql_as("a", "mallory", &calls.join("; ")).unwrap();
    c.psql("a", "SELECT upper('x')");
    let report = c.report("a");
    let text = report.to_string();
    assert!(!text.contains("acme_payroll") && !text.contains("customer_secrets"), "{text}");
    assert!(report.get("functions_used_truncated").is_none(), "user functions took space: {report}");

    // Fill the table with built-ins: new pairs are dropped, and the report says so.
    c.psql("a", &fill(&BUILTINS));
    c.psql("a", "SELECT upper('x')");
    let full = c.report("a");
    assert_eq!(full["functions_used_truncated"], "true", "{full}");
    assert_eq!(full["functions_used"][UPPER], "2", "an existing pair stopped counting");
    let b = c.report("b");
    assert!(b.get("functions_used_truncated").is_none(), "b lost nothing: {b}");
}

/// A full table's flag goes out with the report, and once that report is accepted its pairs
/// are given back: the flag goes away and new functions count again.
#[test]
fn the_truncation_flag_goes_out_once_and_an_accepted_report_makes_room() {
    let ep = Endpoint::start(Answer::version("0.1.0"));
    let c = Cluster::reporting_to(&ep, "1h", "timescaledb_telemetry.max_tracked_functions = 40");
    c.create_db_with_extension("a");
    let uuid = c.report("a")["db_uuid"].as_str().unwrap().to_string();
    c.wait_settled("a");
    let reports = ep.requests_for(&uuid).len();
    c.psql("a", &fill(&BUILTINS));
    assert_eq!(c.report("a")["functions_used_truncated"], "true");
    c.psql("a", "SELECT _timescaledb_catalog.wake_telemetry_launcher()");
    assert!(wait_until(SOON, || ep.requests_for(&uuid).len() > reports), "no second report");
    let sent = ep.requests_for(&uuid).last().unwrap().json();
    assert_eq!(sent["functions_used_truncated"], "true", "{sent}");
    assert!(
        wait_until(SOON, || c.report("a").get("functions_used_truncated").is_none()),
        "still truncated after the accepted report: {}",
        c.report("a")
    );
    c.psql("a", "SELECT pg_catalog.quote_literal('room'::text)");
    assert_eq!(used(&c, "a")["pg_catalog.quote_literal(text)"], "1");
}

/// A related extension's function counted, then dropped before any report: its count has no
/// name any more, so no report carries it (nor fails on it), and the worker's report goes out.
#[test]
fn a_function_dropped_after_it_was_counted_is_left_out() {
    if crate::common::major() != 15 {
        eprintln!("skipped: PostGIS is installed for PostgreSQL 15 only");
        return;
    }
    let ep = Endpoint::start(Answer::version("0.1.0"));
    let c = Cluster::reporting_to(&ep, "1h", "");
    c.create_db_with_extension("a");
    let uuid = c.report("a")["db_uuid"].as_str().unwrap().to_string();
    c.wait_settled("a");
    let reports = ep.requests_for(&uuid).len();
    c.psql("a", "CREATE EXTENSION postgis");
    c.psql("a", "SELECT ST_AsText(ST_MakePoint(1, 2))");
    assert_eq!(used(&c, "a")["postgis.st_makepoint(double precision,double precision)"], "1");
    c.psql("a", "DROP EXTENSION postgis");
    c.psql("a", "SELECT upper('x')");
    let report = c.report("a");
    assert!(!report.to_string().contains("st_makepoint"), "{report}");
    assert_eq!(report["functions_used"][UPPER], "1");
    c.psql("a", "SELECT _timescaledb_catalog.wake_telemetry_launcher()");
    assert!(wait_until(SOON, || ep.requests_for(&uuid).len() > reports), "{}", c.server_log());
    let sent = ep.requests_for(&uuid).last().unwrap().json();
    assert!(!sent.to_string().contains("st_makepoint"), "{sent}");
    assert_eq!(sent["functions_used"][UPPER], "1", "{sent}");
}

#[test]
fn concurrent_sessions_count_exactly() {
    let c = Cluster::preloaded("");
    c.create_db_with_extension("a");
    let script = c.dir.join("upper.sql");
    std::fs::write(&script, "SELECT pg_catalog.upper('x');\n").unwrap();
    let out = std::process::Command::new(format!("{}/pgbench", bin()))
        .args(["-h", c.dir.to_str().unwrap(), "-p", &c.port.to_string(), "-U", "postgres"])
        .args(["-n", "-c", "8", "-j", "4", "-t", "2500", "-M", "simple", "-f", script.to_str().unwrap(), "a"])
        .output()
        .unwrap();
    assert!(out.status.success(), "pgbench: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(used(&c, "a")[UPPER], "20000");
}

#[test]
fn the_hook_chains_with_pg_stat_statements_in_either_order() {
    for libraries in
        ["pg_stat_statements, timescaledb_telemetry", "timescaledb_telemetry, pg_stat_statements"]
    {
        let c = Cluster::preloaded(&format!(
            "shared_preload_libraries = '{libraries}'\npg_stat_statements.track_planning = on"
        ));
        c.create_db_with_extension("a");
        c.psql("a", "CREATE EXTENSION pg_stat_statements; SELECT pg_stat_statements_reset()");
        c.psql("a", &repeat("SELECT upper('counted')", 3));
        assert_eq!(used(&c, "a")[UPPER], "3", "{libraries}");
        let plans =
            c.psql("a", "SELECT sum(plans) FROM pg_stat_statements WHERE query LIKE 'SELECT upper(%'");
        assert_eq!(plans, "3", "pg_stat_statements lost its plans with {libraries}");
        // pg_stat_statements is no related extension: its functions, used just now, are
        // never counted.
        let used = used(&c, "a");
        assert!(!used.to_string().contains("pg_stat_statements"), "{used}");
    }
}

#[test]
fn databases_without_the_extension_count_nothing() {
    let c = Cluster::preloaded("timescaledb_telemetry.max_tracked_functions = 10");
    c.psql("postgres", "CREATE DATABASE plain");
    // Far more built-ins than the table holds, in a database without the extension...
    let many: Vec<String> = (0..30).map(|i| format!("SELECT abs({i}), sqrt({i}), md5('{i}')")).collect();
    c.psql("plain", &many.join("; "));
    c.psql("plain", "SELECT lower('a'), upper('a'), initcap('a'), length('a'), reverse('a'), ascii('a')");
    // ... took no space: a database with it counts without loss.
    c.psql("postgres", "CREATE DATABASE a");
    c.psql("a", "SET timescaledb.telemetry_level = no_functions; CREATE EXTENSION timescaledb_telemetry");
    c.psql("a", "SELECT upper('x')");
    let report = c.report("a");
    assert_eq!(report["functions_used"][UPPER], "1", "{report}");
    assert!(report.get("functions_used_truncated").is_none(), "{report}");
}

/// PostGIS is Debian's postgresql-15-postgis-3 (scripts/setup-debian); the other majors'
/// binaries come without it.
#[test]
fn extension_functions_are_named_by_their_extension_never_by_the_schema_it_lives_in() {
    if crate::common::major() != 15 {
        eprintln!("skipped: PostGIS is installed for PostgreSQL 15 only");
        return;
    }
    let c = Cluster::preloaded("");
    c.create_db_with_extension("a");
    c.psql("a", "CREATE SCHEMA acme_gis; CREATE EXTENSION postgis SCHEMA acme_gis");
    c.psql(
        "a",
        "CREATE TABLE acme_sites(id int PRIMARY KEY, g acme_gis.geometry); \
         SELECT acme_gis.st_astext(acme_gis.st_makepoint(1, 2)); SELECT acme_gis.st_distance(g, g) FROM acme_sites; \
         SELECT acme_gis.st_collect(ARRAY[g]) FROM acme_sites",
    );
    let report = c.report("a");
    let used = &report["functions_used"];
    assert_eq!(used["postgis.st_makepoint(double precision,double precision)"], "1", "{used}");
    assert_eq!(used["postgis.st_astext(postgis.geometry)"], "1", "{used}");
    assert_eq!(used["postgis.st_distance(postgis.geometry,postgis.geometry)"], "1", "{used}");
    assert_eq!(used["postgis.st_collect(postgis.geometry[])"], "1", "{used}");
    assert_eq!(report["related_extensions"]["PostGIS"], "true");
    let text = report.to_string();
    assert!(!text.contains("acme"), "a user's name leaked: {text}");
    // A function taken out of its extension is no longer the extension's: named again in
    // the same session, it is left out (and a user's function is never named).
    let key = "postgis.st_astext(postgis.geometry)";
    let out = c.psql(
        "a",
        &format!(
            "SELECT get_telemetry_report()->'functions_used' ? '{key}';
             ALTER EXTENSION postgis DROP FUNCTION acme_gis.st_astext(acme_gis.geometry);
             SELECT get_telemetry_report()->'functions_used' ? '{key}'"
        ),
    );
    assert_eq!(out.lines().collect::<Vec<_>>(), ["t", "f"], "{out}");
}

#[test]
fn a_query_deeper_than_the_walk_goes_still_runs_and_counts_what_the_walk_reached() {
    let c = Cluster::preloaded("max_stack_depth = '6MB'");
    c.create_db_with_extension("a");
    let depth = 1500;
    let sql = format!("SELECT {}1{}", "abs(".repeat(depth), ")".repeat(depth));
    assert_eq!(c.psql("a", &sql), "1");
    assert_eq!(used(&c, "a")["pg_catalog.abs(integer)"], "1");
}

#[test]
fn a_dropped_database_gives_its_pairs_back_within_one_launcher_cycle() {
    // SPEC §4.1 (the issue: with 40 pairs, a database that counted 40 built-ins and was
    // dropped left a table in which no new database counted anything until restart).
    let ep = Endpoint::start(Answer::version("0.1.0"));
    let c = Cluster::reporting_to(&ep, "1h", "timescaledb_telemetry.max_tracked_functions = 40");
    c.create_db_with_extension("first");
    let reported = "SELECT last_status FROM get_telemetry_status()";
    assert!(wait_until(Duration::from_secs(15), || c.psql("first", reported) == "200"));
    c.psql("first", &fill(&BUILTINS));
    assert_eq!(c.report("first")["functions_used_truncated"], "true");
    c.psql("postgres", "DROP DATABASE first");
    // CREATE EXTENSION wakes the launcher, which visits second: one cycle.
    c.create_db_with_extension("second");
    assert!(
        wait_until(Duration::from_secs(15), || c
            .psql("second", "SELECT last_status FROM get_telemetry_status()")
            == "200"),
        "{}",
        c.server_log()
    );
    // 30 new pairs: room only if first's 40 were given back.
    c.psql("second", &fill(&BUILTINS[..30]));
    let report = c.report("second");
    assert!(report.get("functions_used_truncated").is_none(), "{report}");
    assert!(report["functions_used"].as_object().unwrap().len() >= 30, "{report}");
}

/// PostGIS is Debian's postgresql-15-postgis-3; the other majors' binaries come without it.
#[test]
fn a_function_a_role_adds_to_an_extension_she_owns_is_never_counted() {
    if crate::common::major() != 15 {
        eprintln!("skipped: PostGIS is installed for PostgreSQL 15 only");
        return;
    }
    let c = Cluster::preloaded("");
    c.psql("postgres", "CREATE ROLE mallory LOGIN");
    c.psql("postgres", "CREATE DATABASE a OWNER mallory");
    c.psql("a", "CREATE EXTENSION timescaledb_telemetry; CREATE EXTENSION postgis");
    // As if she had installed a trusted related extension herself (timescaledb_toolkit is
    // one; PostGIS is the related extension at hand).
    c.psql("a", "UPDATE pg_extension SET extowner = 'mallory'::regrole WHERE extname = 'postgis'");
    c.try_psql_as(
        "a",
        "mallory",
        "CREATE FUNCTION public.her_function(int) RETURNS int LANGUAGE sql AS 'SELECT $1';
         ALTER EXTENSION postgis ADD FUNCTION public.her_function(int);
         SELECT public.her_function(1); SELECT public.postgis_version()",
    )
    .unwrap();
    let report = c.report("a");
    assert!(!report.to_string().contains("her_function"), "{report}");
    // The extension's own functions still count.
    assert_eq!(report["functions_used"]["postgis.postgis_version()"], "1", "{report}");
}

//! The background worker against a real cluster (library preloaded) and a real HTTP
//! endpoint on 127.0.0.1 started by each test.

use crate::common::endpoint::{Answer, Endpoint};
use crate::common::{wait_until, Cluster};
use std::time::{Duration, Instant};

const SOON: Duration = Duration::from_secs(15);

/// A preloaded cluster reporting to `ep` every `interval`.
fn cluster_for(ep: &Endpoint, interval: &str, extra: &str) -> Cluster {
    Cluster::reporting_to(ep, interval, &format!("timescaledb_telemetry.timeout = '2s'\n{extra}"))
}

fn uuid_of(c: &Cluster, db: &str) -> String {
    c.report(db)["db_uuid"].as_str().unwrap().to_string()
}

/// Lines of the server log that contain `needle`.
fn log_lines(c: &Cluster, needle: &str) -> usize {
    c.server_log().lines().filter(|l| l.contains(needle)).count()
}

/// Checked here as well as when the cluster is dropped: the same launcher still runs, no
/// worker exited with an error, nothing crashed.
fn assert_no_crash(c: &Cluster) {
    c.check_worker_health().unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn posts_carry_method_path_headers_and_the_report_as_body() {
    let ep = Endpoint::start(Answer::version("0.1.0"));
    let c = cluster_for(&ep, "1h", "");
    c.create_db_with_extension("app");
    let uuid = uuid_of(&c, "app");
    assert!(wait_until(SOON, || !ep.requests_for(&uuid).is_empty()), "no report arrived");
    let req = ep.requests_for(&uuid).remove(0);
    // The answer handled (the accepted usage subtracted) before the report is read again.
    assert!(wait_until(SOON, || c.psql("app", "SELECT last_status FROM get_telemetry_status()") == "200"));
    let report = c.report("app");
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/v1/metrics");
    assert_eq!(req.header("content-type"), Some("application/json"));
    let agent = format!("timescaledb_telemetry/{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(req.header("user-agent"), Some(agent.as_str()));
    let mut body = req.json();
    let mut expected = report.clone();
    // Only the database's size may move between the two moments, and the function usage,
    // which the accepted report took away: what it carried (CREATE EXTENSION's own
    // queries) is gone, and nothing else was planned since.
    assert_ne!(body["functions_used"], serde_json::json!({}));
    assert_eq!(expected["functions_used"], serde_json::json!({}));
    for key in ["data_volume", "functions_used"] {
        body.as_object_mut().unwrap().remove(key);
        expected.as_object_mut().unwrap().remove(key);
    }
    assert_eq!(body, expected);
}

#[test]
fn each_database_reports_separately_with_its_own_uuid() {
    let ep = Endpoint::start(Answer::version("0.1.0"));
    let c = cluster_for(&ep, "1h", "");
    c.create_db_with_extension("one");
    c.create_db_with_extension("two");
    let (u1, u2) = (uuid_of(&c, "one"), uuid_of(&c, "two"));
    assert_ne!(u1, u2);
    assert!(wait_until(SOON, || !ep.requests_for(&u1).is_empty() && !ep.requests_for(&u2).is_empty()));
    // The database without the extension sends nothing.
    assert!(ep
        .requests()
        .iter()
        .all(|r| r.json()["db_uuid"] == u1.as_str() || r.json()["db_uuid"] == u2.as_str()));
}

#[test]
fn a_newer_version_logs_the_out_of_date_warning() {
    let ep = Endpoint::start(Answer::version("99.1.2"));
    let c = cluster_for(&ep, "1h", "");
    c.create_db_with_extension("app");
    assert!(c.wait_for_log(SOON, |l| l.contains("DETAIL:")), "{}", c.server_log());
    let log = c.server_log();
    assert!(log.contains("WARNING:  the \"timescaledb_telemetry\" extension is out of date"), "{log}");
    assert!(
        log.contains(&format!(
            "DETAIL:  The most up-to-date version is 99.1.2, the installed version is {}.",
            env!("CARGO_PKG_VERSION")
        )),
        "{log}"
    );
    assert!(log.contains("HINT:  "), "{log}");
    let status = c.psql("app", "SELECT latest_version, last_status FROM get_telemetry_status()");
    assert_eq!(status, "99.1.2|200");
}

#[test]
fn an_older_version_logs_up_to_date_once_for_many_databases() {
    let ep = Endpoint::start(Answer::version("0.0.9"));
    let c = cluster_for(&ep, "1h", "");
    for db in ["a", "b", "c"] {
        c.create_db_with_extension(db);
    }
    // Every answer handled: the launcher writes a database's status after its answer.
    let handled = |db: &str| c.psql(db, "SELECT latest_version FROM get_telemetry_status()") == "0.0.9";
    assert!(wait_until(SOON, || ["a", "b", "c"].into_iter().all(handled)), "{}", c.server_log());
    let line = "LOG:  the \"timescaledb_telemetry\" extension is up to date (latest version 0.0.9)";
    assert_eq!(log_lines(&c, line), 1, "{}", c.server_log());
}

/// One bad answer: one bounded failure line, no crash, and recovery once the endpoint is good.
/// The client closes every connection within the 2 s timeout (plus slack for scheduling).
fn bad_answer_then_recovery(answer: Answer, reason: &str) {
    let ep = Endpoint::start(answer);
    let c = cluster_for(&ep, "2s", "");
    c.create_db_with_extension("app");
    let line = format!("LOG:  telemetry report for database \"app\" failed: {reason}");
    assert!(
        c.wait_for_log(Duration::from_secs(20), |l| l.contains(&line)),
        "no '{line}' in:\n{}",
        c.server_log()
    );
    // Retried (the endpoint sees more attempts), but the same reason is logged once an hour.
    // A third request means the second one's failure has been handled (and not logged).
    assert!(ep.wait_for(3, Duration::from_secs(30)), "no retry");
    assert_eq!(log_lines(&c, "failed: "), 1, "{}", c.server_log());
    assert!(
        wait_until(Duration::from_secs(10), || !ep.held().is_empty()),
        "the client never closed the connection"
    );
    assert!(
        ep.held().iter().all(|d| *d < Duration::from_secs(4)),
        "connection held too long: {:?}",
        ep.held()
    );
    // (That reasons are one line of at most 200 characters is http.rs's unit test
    // `reasons_are_one_bounded_line`: none of the reasons here could be longer.)
    let status = c.psql("app", "SELECT last_error IS NOT NULL FROM get_telemetry_status()");
    assert_eq!(status, "t");
    ep.set_answer(Answer::version("0.1.0"));
    assert!(
        c.wait_for_log(Duration::from_secs(20), |l| l
            .contains("telemetry report for database \"app\" succeeded after")),
        "no recovery:\n{}",
        c.server_log()
    );
    assert_eq!(
        c.psql("app", "SELECT last_error IS NULL, latest_version FROM get_telemetry_status()"),
        "t|0.1.0"
    );
    assert_no_crash(&c);
}

#[test]
fn http_500_is_one_log_line_and_recovers() {
    bad_answer_then_recovery(Answer::json(500, "{}"), "HTTP status 500");
}

#[test]
fn http_404_is_one_log_line_and_recovers() {
    bad_answer_then_recovery(Answer::json(404, "not here"), "HTTP status 404");
}

#[test]
fn a_non_json_answer_is_malformed() {
    bad_answer_then_recovery(Answer::json(200, "<html>hello</html>"), "malformed response: not JSON");
}

#[test]
fn json_without_the_version_field_is_malformed() {
    bad_answer_then_recovery(
        Answer::json(200, "{\"other\": \"x\"}"),
        "malformed response: no current_timescaledb_version",
    );
}

#[test]
fn an_invalid_version_string_is_refused() {
    bad_answer_then_recovery(
        Answer::json(200, "{\"current_timescaledb_version\": \"2.0'; DROP TABLE x; --\"}"),
        "invalid version in response",
    );
}

#[test]
fn a_ten_mebibyte_answer_is_refused() {
    let mut body = b"{\"current_timescaledb_version\": \"1.0.0\", \"pad\": \"".to_vec();
    body.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
    body.extend_from_slice(b"\"}");
    bad_answer_then_recovery(Answer::Respond { status: 200, body }, "response larger than 64 KiB");
}

#[test]
fn an_endpoint_that_never_answers_times_out() {
    bad_answer_then_recovery(Answer::Hang, "timed out after 2 s");
}

#[test]
fn a_dripping_endpoint_is_cut_at_the_timeout() {
    bad_answer_then_recovery(Answer::Drip { every: Duration::from_millis(500) }, "timed out after 2 s");
}

#[test]
fn a_closed_port_is_a_connect_failure_and_recovers_after_reload() {
    let good = Endpoint::start(Answer::version("0.1.0"));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let c = Cluster::preloaded(&format!(
        "timescaledb_telemetry.endpoint = 'http://127.0.0.1:{closed}/v1/metrics'\ntimescaledb_telemetry.interval = '2s'"
    ));
    c.create_db_with_extension("app");
    let line = "LOG:  telemetry report for database \"app\" failed: could not connect: ";
    assert!(c.wait_for_log(SOON, |l| l.contains(line)), "{}", c.server_log());
    c.psql("postgres", &format!("ALTER SYSTEM SET timescaledb_telemetry.endpoint = '{}'", good.url()));
    c.reload();
    assert!(good.wait_for(1, SOON), "no report after the endpoint was fixed");
    assert_no_crash(&c);
}

/// With databases "app" and "other" reporting every second: after `off` (run as a
/// superuser in postgres), requests for "app" stop while "other" goes on; after `on`, "app"
/// resumes. No restart, and no fixed sleep: the launcher says when it has seen the level
/// (app's status), and other's reports show it is alive and still looking.
fn level_off_then_on(c: &Cluster, ep: &Endpoint, off: &[&str], on: &[&str]) {
    let (app, other) = (uuid_of(c, "app"), uuid_of(c, "other"));
    assert!(wait_until(SOON, || !ep.requests_for(&app).is_empty()), "no first report");
    let run = |sql: &[&str]| {
        for statement in sql {
            c.psql("postgres", statement);
        }
        c.reload();
    };
    run(off);
    let level = || c.psql("app", "SELECT level FROM get_telemetry_status()");
    assert!(wait_until(SOON, || level() == "off"), "the launcher never saw level off: {}", level());
    // One more report of other lets an attempt for app already under way land; over the
    // next two, app gets none.
    let others = |n: usize| wait_until(SOON, || ep.requests_for(&other).len() >= n);
    assert!(others(ep.requests_for(&other).len() + 1), "the other database stopped reporting too");
    let frozen = ep.requests_for(&app).len();
    assert!(others(ep.requests_for(&other).len() + 2), "the other database stopped reporting too");
    assert_eq!(ep.requests_for(&app).len(), frozen, "requests were sent at level off");
    run(on);
    assert!(wait_until(SOON, || ep.requests_for(&app).len() > frozen), "reporting did not resume");
}

#[test]
fn level_off_by_alter_system_stops_all_requests_until_switched_back() {
    let ep = Endpoint::start(Answer::version("0.1.0"));
    let c = cluster_for(&ep, "1s", "");
    c.create_db_with_extension("app");
    // other's own setting is stronger than the file's: it keeps reporting, to show that the
    // launcher is alive while app says nothing.
    c.create_db_with_extension("other");
    c.psql("postgres", "ALTER DATABASE other SET timescaledb.telemetry_level = 'basic'");
    level_off_then_on(
        &c,
        &ep,
        &["ALTER SYSTEM SET timescaledb.telemetry_level = 'off'"],
        &["ALTER SYSTEM RESET timescaledb.telemetry_level"],
    );
}

#[test]
fn level_off_by_alter_database_stops_only_that_database() {
    let ep = Endpoint::start(Answer::version("0.1.0"));
    let c = cluster_for(&ep, "1s", "");
    c.create_db_with_extension("app");
    c.create_db_with_extension("other");
    level_off_then_on(
        &c,
        &ep,
        &["ALTER DATABASE app SET timescaledb.telemetry_level = 'off'"],
        &["ALTER DATABASE app RESET timescaledb.telemetry_level"],
    );
}

#[test]
fn level_off_by_alter_user_on_the_extension_owner_stops_its_database() {
    let ep = Endpoint::start(Answer::version("0.1.0"));
    let c = cluster_for(&ep, "1s", "");
    c.psql("postgres", "CREATE ROLE ext_owner SUPERUSER LOGIN");
    c.psql("postgres", "CREATE DATABASE app");
    c.try_psql_as("app", "ext_owner", "CREATE EXTENSION timescaledb_telemetry").unwrap();
    c.create_db_with_extension("other");
    level_off_then_on(
        &c,
        &ep,
        &["ALTER USER ext_owner SET timescaledb.telemetry_level = 'off'"],
        &["ALTER USER ext_owner RESET timescaledb.telemetry_level"],
    );
}

#[test]
fn drop_rename_and_template_of_a_reporting_database_succeed_first_time() {
    let ep = Endpoint::start(Answer::version("0.1.0"));
    let c = cluster_for(&ep, "1s", "");
    for round in 0..5 {
        let name = format!("r{round}");
        c.create_db_with_extension(&name);
        // Visited (reported) before the DDL, so that the DDL meets a database in the
        // launcher's schedule, due again every second.
        let uuid = uuid_of(&c, &name);
        assert!(wait_until(SOON, || !ep.requests_for(&uuid).is_empty()), "{name} was not reported");
        // Each succeeds on the first try and at once: DROP DATABASE would wait up to 5 s for
        // a collector connected there, then fail.
        for ddl in [
            format!("CREATE DATABASE copy{round} TEMPLATE {name}"),
            format!("ALTER DATABASE {name} RENAME TO renamed{round}"),
            format!("DROP DATABASE renamed{round}"),
            format!("DROP DATABASE copy{round}"),
        ] {
            let start = Instant::now();
            c.psql("postgres", &ddl);
            assert!(start.elapsed() < Duration::from_secs(3), "{ddl} took {:?}", start.elapsed());
        }
    }
    assert_no_crash(&c);
}

#[test]
fn fast_shutdown_does_not_wait_for_a_hung_request() {
    let ep = Endpoint::start(Answer::Hang);
    // Timed by the server's own clock (%n: epoch seconds with milliseconds).
    let c = Cluster::preloaded(&format!(
        "timescaledb_telemetry.endpoint = '{}'\ntimescaledb_telemetry.timeout = '5min'\n\
         log_line_prefix = '%n [%p] %b '",
        ep.url()
    ));
    c.create_db_with_extension("app");
    assert!(ep.wait_for(1, SOON), "no request");
    c.stop();
    // The request would hold on for 5 minutes; the stop must not wait for it. From the
    // postmaster's "received fast shutdown request" to its last line, "database system is
    // shut down": an idle worker's whole stop takes well under a second (the figure is in
    // bench/); 20 s leaves room for the shutdown checkpoint on a loaded machine, and a
    // launcher that waited for its request would hold the postmaster for 5 minutes.
    let log = c.server_log();
    let stamp = |needle: &str| {
        log.lines()
            .find(|l| l.contains(needle))
            .and_then(|l| l.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no \"{needle}\" in the log:\n{log}"))
    };
    let took = stamp("database system is shut down") - stamp("received fast shutdown request");
    assert!(took < 20.0, "the shutdown took {took:.3} s:\n{log}");
    // The launcher left on its own, as PostgreSQL's workers do (exit code 1), not killed.
    let log = c.server_log();
    let launcher_exit = log.lines().find(|l| l.contains("\"timescaledb_telemetry launcher\" (PID"));
    assert!(launcher_exit.is_none_or(|l| l.ends_with("exited with exit code 1")), "{log}");
}

#[test]
fn create_extension_in_a_running_server_reports_without_restart() {
    let ep = Endpoint::start(Answer::version("0.1.0"));
    let c = cluster_for(&ep, "1h", "");
    c.create_db_with_extension("first");
    assert!(ep.wait_for(1, SOON));
    std::thread::sleep(Duration::from_secs(1));
    c.create_db_with_extension("later");
    let uuid = uuid_of(&c, "later");
    assert!(
        wait_until(Duration::from_secs(10), || !ep.requests_for(&uuid).is_empty()),
        "no report within 10 s"
    );
}

#[test]
fn no_worker_runs_without_shared_preload_libraries() {
    let ep = Endpoint::start(Answer::version("0.1.0"));
    let c = Cluster::plain(&format!("timescaledb_telemetry.endpoint = '{}'", ep.url()));
    c.create_db_with_extension("app");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(ep.count(), 0);
    let workers = c.psql(
        "postgres",
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'timescaledb_telemetry%'",
    );
    assert_eq!(workers, "0");
    assert_eq!(c.psql("app", "SELECT last_attempt IS NULL FROM get_telemetry_status()"), "t");
}

#[test]
fn status_and_schedule_survive_a_restart() {
    let ep = Endpoint::start(Answer::version("0.1.0"));
    let c = cluster_for(&ep, "1h", "");
    c.create_db_with_extension("app");
    c.wait_settled("app");
    let before =
        c.psql("app", "SELECT last_success, latest_version, next_attempt FROM get_telemetry_status()");
    c.restart();
    assert_eq!(
        c.psql("app", "SELECT last_success, latest_version, next_attempt FROM get_telemetry_status()"),
        before
    );
    // The last success is younger than the interval: nothing is sent again now, while a
    // database made after the restart is reported at once (the launcher is alive).
    c.create_db_with_extension("witness");
    let witness = uuid_of(&c, "witness");
    assert!(wait_until(SOON, || !ep.requests_for(&witness).is_empty()), "{}", c.server_log());
    assert_eq!(ep.requests_for(&uuid_of(&c, "app")).len(), 1);
    assert_eq!(
        c.psql("app", "SELECT next_attempt > now() + interval '50 minutes' FROM get_telemetry_status()"),
        "t"
    );
}

/// The state file of a released version is the launcher's schedule; one it cannot read is
/// one WARNING and a fresh start, never a silent one.
#[test]
fn a_released_versions_state_file_is_kept_and_an_unreadable_one_is_said() {
    let ep = Endpoint::start(Answer::version("0.1.0"));
    let c = cluster_for(&ep, "1h", "");
    c.create_db_with_extension("app");
    let app = uuid_of(&c, "app");
    let oid = c.psql("app", "SELECT oid FROM pg_database WHERE datname = 'app'");
    assert!(wait_until(SOON, || !ep.requests_for(&app).is_empty()));
    let state = c.data.join("timescaledb_telemetry.state");

    // As 0.2.0 wrote it: app answered 0.0.5 a minute ago and is due in an hour.
    c.stop();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    std::fs::write(
        &state,
        format!(
            r#"{{"databases":{{"{oid}":{{"level":"basic","endpoint":"{}","last_attempt":{t},"last_success":{t},
                "last_status":200,"last_error":null,"latest_version":"0.0.5","next_attempt":{due},"failures":0}}}}}}"#,
            ep.url(),
            t = now - 60.0,
            due = now + 3600.0
        ),
    )
    .unwrap();
    c.start();
    c.create_db_with_extension("witness");
    // Its answer handled: the launcher has saved its state since it started.
    c.wait_settled("witness");
    assert_eq!(ep.requests_for(&app).len(), 1, "app was reported before its time");
    assert_eq!(c.psql("app", "SELECT latest_version FROM get_telemetry_status()"), "0.0.5");

    // Unreadable: said once, and app, whose schedule is lost, is reported at once.
    c.stop();
    std::fs::write(&state, "{garbage").unwrap();
    c.start();
    assert!(wait_until(SOON, || ep.requests_for(&app).len() >= 2), "{}", c.server_log());
    let line = "WARNING:  timescaledb_telemetry: the worker state could not be read, starting afresh:";
    assert_eq!(log_lines(&c, line), 1, "{}", c.server_log());
    assert!(
        wait_until(SOON, || c.psql("app", "SELECT latest_version FROM get_telemetry_status()") == "0.1.0")
    );
}

#[test]
fn many_databases_all_report_using_at_most_two_worker_slots() {
    let ep = Endpoint::start(Answer::version("0.1.0"));
    let c = cluster_for(&ep, "1h", "max_worker_processes = 8");
    let n = 12;
    // A sampler inside the server looks at the workers every millisecond while they report
    // (polling from here, a short-lived third worker could slip between two looks).
    let sampler = c
        .client("psql", "postgres")
        .args(["-X", "-q", "-A", "-t", "-d", "postgres", "-c"])
        .arg(
            "DO $$ DECLARE n int; most int := 0; BEGIN
               FOR i IN 1..20000 LOOP
                 PERFORM pg_stat_clear_snapshot();
                 SELECT count(*) INTO n FROM pg_stat_activity WHERE backend_type LIKE 'timescaledb_telemetry%';
                 most := greatest(most, n);
                 EXIT WHEN clock_timestamp() - statement_timestamp() > interval '25 s';
                 PERFORM pg_sleep(0.001);
               END LOOP;
               RAISE NOTICE 'most=%', most;
             END $$",
        )
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    for i in 0..n {
        c.create_db_with_extension(&format!("db{i}"));
    }
    let all = wait_until(Duration::from_secs(30), || {
        let uuids: std::collections::BTreeSet<String> =
            ep.requests().iter().map(|r| r.json()["db_uuid"].as_str().unwrap().to_string()).collect();
        uuids.len() >= n
    });
    assert!(all, "not every database reported");
    let out = sampler.wait_with_output().unwrap();
    let notice = String::from_utf8_lossy(&out.stderr);
    let most: usize =
        notice.split("most=").nth(1).and_then(|m| m.trim().parse().ok()).expect("the sampler's answer");
    assert!(most >= 1, "the sampler never saw the launcher: {notice}");
    assert!(most <= 2, "{most} worker slots in use at once");
}

#[test]
fn no_worker_runs_on_a_standby() {
    let ep = Endpoint::start(Answer::version("0.1.0"));
    let primary = cluster_for(&ep, "1h", "");
    primary.create_db_with_extension("app");
    assert!(ep.wait_for(1, SOON));
    let standby = Cluster::standby_of(&primary);
    assert!(wait_until(SOON, || standby.try_psql("app", "SELECT pg_is_in_recovery()").as_deref() == Ok("t")));
    std::thread::sleep(Duration::from_secs(3));
    let workers = standby.psql(
        "postgres",
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'timescaledb_telemetry%'",
    );
    assert_eq!(workers, "0");
    assert!(!standby.server_log().contains("telemetry report"), "{}", standby.server_log());
    assert!(!standby.server_log().contains("extension is"), "{}", standby.server_log());
    // The report still works there, read-only.
    assert_eq!(standby.report("app")["db_uuid"], primary.report("app")["db_uuid"]);
    // The primary keeps its launcher.
    let primary_workers = primary.psql(
        "postgres",
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'timescaledb_telemetry launcher'",
    );
    assert_eq!(primary_workers, "1");
}

#[test]
fn a_reload_with_a_shorter_interval_takes_effect_at_once() {
    let ep = Endpoint::start(Answer::version("0.1.0"));
    let c = cluster_for(&ep, "1h", "");
    c.create_db_with_extension("app");
    assert!(ep.wait_for(1, SOON));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(ep.count(), 1, "reported again before the interval");
    c.psql("postgres", "ALTER SYSTEM SET timescaledb_telemetry.interval = '1s'");
    c.reload();
    assert!(ep.wait_for(3, SOON), "the shorter interval was not applied");
}

#[test]
fn a_broken_catalog_is_a_logged_failure_not_a_crash() {
    let ep = Endpoint::start(Answer::version("0.1.0"));
    let c = cluster_for(&ep, "2s", "");
    c.create_db_with_extension("app");
    assert!(ep.wait_for(1, SOON));
    c.psql("app", "ALTER TABLE _timescaledb_catalog.metadata RENAME TO metadata_moved");
    // The function says what is wrong; the session goes on.
    let err = c.try_psql("app", "SELECT get_telemetry_report()").unwrap_err();
    assert!(err.contains("relation \"_timescaledb_catalog.metadata\" does not exist"), "{err}");
    assert_eq!(c.psql("app", "SELECT 1"), "1");
    let line = "telemetry report for database \"app\" failed: could not collect the report: relation";
    assert!(c.wait_for_log(SOON, |l| l.contains(line)), "{}", c.server_log());
    c.psql("app", "ALTER TABLE _timescaledb_catalog.metadata_moved RENAME TO metadata");
    assert!(
        c.wait_for_log(Duration::from_secs(20), |l| l
            .contains("telemetry report for database \"app\" succeeded after")),
        "{}",
        c.server_log()
    );
    assert_no_crash(&c);
}

#[test]
fn create_extension_soon_after_create_database_is_never_missed() {
    // A busy launcher (another database reports every second) lists a new database and
    // looks into it at some moment around its CREATE EXTENSION: before, during or after.
    // Whatever the interleaving, the new database must report.
    let ep = Endpoint::start(Answer::version("0.1.0"));
    let c = cluster_for(&ep, "1s", "");
    c.create_db_with_extension("busy");
    assert!(ep.wait_for(1, SOON));
    for round in 0..10u64 {
        let db = format!("new{round}");
        c.psql("postgres", &format!("CREATE DATABASE {db}"));
        std::thread::sleep(Duration::from_millis(round * 130));
        c.psql(&db, "CREATE EXTENSION timescaledb_telemetry");
        let uuid = uuid_of(&c, &db);
        assert!(
            wait_until(Duration::from_secs(10), || !ep.requests_for(&uuid).is_empty()),
            "round {round}: no report within 10 s"
        );
    }
}

#[test]
fn template_and_no_connection_databases_are_never_visited() {
    let ep = Endpoint::start(Answer::version("0.1.0"));
    let c = cluster_for(&ep, "1h", "");
    for db in ["tpl", "noconn", "app"] {
        c.create_db_with_extension(db);
    }
    let (tpl, noconn, app) = (uuid_of(&c, "tpl"), uuid_of(&c, "noconn"), uuid_of(&c, "app"));
    assert!(wait_until(SOON, || [&tpl, &noconn, &app].iter().all(|u| !ep.requests_for(u).is_empty())));
    c.psql("postgres", "ALTER DATABASE tpl IS_TEMPLATE true");
    c.psql("postgres", "ALTER DATABASE noconn ALLOW_CONNECTIONS false");
    // Without the worker's state, a restarted launcher visits every database it may at once.
    c.stop();
    std::fs::remove_file(c.data.join("timescaledb_telemetry.state")).unwrap();
    c.start();
    assert!(wait_until(SOON, || ep.requests_for(&app).len() >= 2), "app was not visited again");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(ep.requests_for(&tpl).len(), 1, "a template database was visited");
    assert_eq!(ep.requests_for(&noconn).len(), 1, "a database without connections was visited");
    // A collector that tried to connect there would have exited with an error.
    assert_no_crash(&c);
}

#[test]
fn level_for_an_owner_without_login_from_role_in_database_role_all_and_invalid_values() {
    let ep = Endpoint::start(Answer::version("0.1.0"));
    let c = cluster_for(&ep, "1s", "");
    c.psql("postgres", "CREATE ROLE owner_nologin NOLOGIN");
    c.psql("postgres", "CREATE DATABASE app OWNER owner_nologin");
    c.psql("app", "SET ROLE owner_nologin; CREATE EXTENSION timescaledb_telemetry");
    assert_eq!(
        c.psql("app", "SELECT extowner::regrole FROM pg_extension WHERE extname = 'timescaledb_telemetry'"),
        "owner_nologin"
    );
    c.create_db_with_extension("other");
    // ALTER ROLE owner IN DATABASE app: only app.
    level_off_then_on(
        &c,
        &ep,
        &["ALTER ROLE owner_nologin IN DATABASE app SET timescaledb.telemetry_level = 'off'"],
        &["ALTER ROLE owner_nologin IN DATABASE app RESET timescaledb.telemetry_level"],
    );
    // ALTER ROLE ALL is below ALTER DATABASE (other stays on), and an invalid value stored
    // above it (as an older library could leave) is skipped, not taken for "basic".
    c.psql("postgres", "ALTER DATABASE other SET timescaledb.telemetry_level = 'basic'");
    c.psql("postgres", "ALTER ROLE owner_nologin IN DATABASE app SET work_mem = '4MB'");
    c.psql(
        "postgres",
        "UPDATE pg_db_role_setting SET setconfig = array['timescaledb.telemetry_level=loud']
          WHERE setrole = 'owner_nologin'::regrole AND setdatabase = (SELECT oid FROM pg_database WHERE datname = 'app')",
    );
    level_off_then_on(
        &c,
        &ep,
        &["ALTER ROLE ALL SET timescaledb.telemetry_level = 'off'"],
        &["ALTER ROLE ALL RESET timescaledb.telemetry_level"],
    );
}

#[test]
fn a_promoted_standby_starts_reporting() {
    let ep = Endpoint::start(Answer::version("0.1.0"));
    // The standby's copy of the worker state keeps the primary's schedule: a short interval.
    let primary = cluster_for(&ep, "4s", "");
    primary.create_db_with_extension("app");
    let uuid = uuid_of(&primary, "app");
    assert!(wait_until(SOON, || ep.requests_for(&uuid).len() == 1));
    let standby = Cluster::standby_of(&primary);
    assert!(wait_until(SOON, || standby.try_psql("app", "SELECT pg_is_in_recovery()").as_deref() == Ok("t")));
    primary.stop();
    let before = ep.requests_for(&uuid).len();
    let out = standby.pg_ctl(&["promote", "-w"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The primary is stopped: a further report of app is the promoted standby's.
    assert!(wait_until(SOON, || ep.requests_for(&uuid).len() > before), "{}", standby.server_log());
    assert_eq!(
        standby.psql(
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'timescaledb_telemetry launcher'"
        ),
        "1"
    );
    standby.check_worker_health().unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_terminated_launcher_comes_back_with_its_schedule_and_a_cancel_is_harmless() {
    // SPEC §5 "The launcher stays".
    let ep = Endpoint::start(Answer::version("0.1.0"));
    let c = cluster_for(&ep, "1h", "");
    c.create_db_with_extension("app");
    let app = uuid_of(&c, "app");
    assert!(wait_until(SOON, || ep.requests_for(&app).len() == 1));
    let first = c.launcher_pid().unwrap();
    assert_eq!(c.psql("postgres", &format!("SELECT pg_cancel_backend({first})")), "t");
    // The launcher goes round its loop (and so meets the cancel) to report a new database.
    c.create_db_with_extension("other");
    let other = uuid_of(&c, "other");
    assert!(wait_until(SOON, || !ep.requests_for(&other).is_empty()), "{}", c.server_log());
    assert_eq!(c.launcher_pid().unwrap(), first, "a cancel ended the launcher:\n{}", c.server_log());
    assert!(!c.server_log().contains("canceling statement"), "{}", c.server_log());

    // Whatever the first launcher still had to do is done: app may have been visited twice
    // at start (created while the start-up visits ran, a wake-up then looks again no sooner
    // than 2 s later), and both answers are saved.
    std::thread::sleep(Duration::from_millis(2500));
    let saved = "SELECT last_status FROM get_telemetry_status()";
    assert!(wait_until(SOON, || c.psql("app", saved) == "200" && c.psql("other", saved) == "200"));
    let reported = ep.requests_for(&app).len();
    assert_eq!(c.psql("postgres", &format!("SELECT pg_terminate_backend({first})")), "t");
    let mut second = String::new();
    let back = wait_until(Duration::from_secs(60), || {
        second = c.launcher_pid().unwrap_or_default();
        !second.is_empty() && second != first
    });
    assert!(back, "no launcher 60 s after pg_terminate_backend:\n{}", c.server_log());
    c.launcher_replaced(&second);
    // It exited with 1 so that the postmaster starts it again.
    c.worker_exit_expected.set(true);
    // The new one is woken by CREATE EXTENSION, and goes on from the saved schedule: app,
    // reported a moment ago with a 1 h interval, is not reported again.
    c.create_db_with_extension("third");
    let third = uuid_of(&c, "third");
    assert!(wait_until(SOON, || !ep.requests_for(&third).is_empty()), "{}", c.server_log());
    assert_eq!(ep.requests_for(&app).len(), reported, "the saved schedule was lost");
    assert_eq!(c.psql("app", "SELECT last_status FROM get_telemetry_status()"), "200");
}

#[test]
fn drop_and_create_extension_is_reported_with_the_new_uuid_at_once() {
    // SPEC §5 "Wake-ups are bounded and complete".
    let ep = Endpoint::start(Answer::version("0.1.0"));
    let c = cluster_for(&ep, "1h", "");
    c.create_db_with_extension("app");
    let before = uuid_of(&c, "app");
    assert!(wait_until(SOON, || ep.requests_for(&before).len() == 1));
    c.psql("app", "DROP EXTENSION timescaledb_telemetry");
    c.psql("app", "CREATE EXTENSION timescaledb_telemetry");
    let after = uuid_of(&c, "app");
    assert_ne!(before, after);
    assert!(
        wait_until(SOON, || !ep.requests_for(&after).is_empty()),
        "the new uuid was not reported:\n{}",
        c.server_log()
    );
}

/// Sequential scans of pg_extension in database `db` counted in its statistics so far (a new
/// session each time, so the numbers are fresh). Every visit makes at least one; a session's
/// own lookups of extensions (our planner hook's, at its first query) use the index.
fn extension_scans(c: &Cluster, db: &str) -> i64 {
    c.psql(db, "SELECT seq_scan FROM pg_catalog.pg_stat_sys_tables WHERE relname = 'pg_extension'")
        .parse()
        .unwrap()
}

#[test]
fn a_collectors_own_reads_are_not_the_databases_activity() {
    // Every visit reads pg_extension (and the catalogs its connection needs); counting those
    // reads made each collector create and flush a statistics entry per catalog, and made a
    // quiet database look busy. Two visits, then one scan of our own, which must show.
    let ep = Endpoint::start(Answer::version("0.1.0"));
    let c = Cluster::reporting_to(&ep, "1s", "");
    c.create_db_with_extension("quiet");
    c.psql("quiet", "CREATE TABLE marker ()");
    let uuid = c.report("quiet")["db_uuid"].as_str().unwrap().to_string();
    assert!(wait_until(SOON, || !ep.requests_for(&uuid).is_empty()), "never reported");
    // The statistics are read once they hold a marker scanned after everything before: our
    // earlier sessions have left, then one scans the marker, and its count shows (at once
    // from 15; on 14 the statistics collector takes its messages in order, and a reader may
    // get a snapshot up to half a second old).
    let others = "SELECT count(*) FROM pg_catalog.pg_stat_activity
                   WHERE datname = current_database() AND pid <> pg_catalog.pg_backend_pid()
                     AND backend_type = 'client backend'";
    let marked = |n: i64| {
        c.psql("quiet", "SELECT seq_scan FROM pg_catalog.pg_stat_user_tables WHERE relname = 'marker'")
            == n.to_string()
    };
    assert!(wait_until(SOON, || c.psql("quiet", others) == "0"), "sessions left in quiet");
    c.psql("quiet", "SELECT count(*) FROM marker");
    assert!(wait_until(SOON, || marked(1)), "the marker never showed");
    let before = extension_scans(&c, "quiet");
    let visits = ep.requests_for(&uuid).len();
    assert!(wait_until(SOON, || ep.requests_for(&uuid).len() >= visits + 2), "no two more visits");
    // One scan of our own, and the marker after it: once the marker shows, so does the scan
    // (and whatever the collectors, which exited before their reports were sent, counted).
    c.psql(
        "quiet",
        "SET enable_indexscan = off; SET enable_bitmapscan = off;
         SELECT count(*) FROM pg_catalog.pg_extension; SELECT count(*) FROM marker",
    );
    assert!(wait_until(SOON, || marked(2)), "the marker never showed again");
    // Our scan is the only one since `before`: the visits in between counted nothing.
    assert_eq!(extension_scans(&c, "quiet"), before + 1);
}

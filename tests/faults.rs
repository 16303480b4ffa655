//! Faults an operator meets (issue 10, SPEC §5): a postmaster killed, an endpoint that
//! redirects, text from outside that would break the log. Real clusters, real endpoints.

use crate::common::endpoint::{Answer, Endpoint};
use crate::common::{wait_until, Cluster};
use std::time::Duration;

const SOON: Duration = Duration::from_secs(15);

fn cluster_for(ep: &Endpoint) -> Cluster {
    Cluster::reporting_to(ep, "1h", "timescaledb_telemetry.timeout = '2s'")
}

/// Whether process `pid` is running (a zombie waiting for its reaper has exited).
fn running(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| stat.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

#[test]
fn the_server_starts_again_after_its_postmaster_is_killed() {
    let ep = Endpoint::start(Answer::version("0.1.0"));
    let c = cluster_for(&ep);
    c.create_db_with_extension("app");
    assert!(ep.wait_for(1, SOON));
    let launcher = c.psql(
        "postgres",
        "SELECT pid FROM pg_stat_activity WHERE backend_type = 'timescaledb_telemetry launcher'",
    );
    assert!(running(&launcher), "no launcher: {launcher:?}");
    // A collector alive at the kill: woken for app while our table there is held, it waits
    // for the lock (up to its 2 s lock timeout).
    let mut holder = c.hold_metadata("app", 30);
    c.psql("app", "SELECT _timescaledb_catalog.wake_telemetry_launcher()");
    let mut collector = String::new();
    assert!(wait_until(SOON, || {
        collector = c.psql(
            "postgres",
            "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a USING (pid)
              WHERE NOT l.granted AND a.backend_type = 'timescaledb_telemetry collector'",
        );
        !collector.is_empty()
    }));
    let pidfile = std::fs::read_to_string(c.data.join("postmaster.pid")).unwrap();
    let postmaster = pidfile.lines().next().unwrap().trim().to_string();
    assert!(std::process::Command::new("kill").args(["-9", &postmaster]).status().unwrap().success());
    // At once: well before the collector's lock timeout would have ended its wait.
    let gone = wait_until(Duration::from_millis(1000), || !running(&collector));
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(gone, "the collector outlived its postmaster by 1 s");
    // It left because the postmaster died, not because its lock wait ran out.
    assert!(!c.server_log().contains("lock timeout"), "{}", c.server_log());
    assert!(
        wait_until(Duration::from_secs(5), || !running(&launcher)),
        "the launcher outlived its postmaster by 5 s"
    );
    // The dead postmaster itself must be reaped (by whoever adopted it) before a new one
    // can tell its lock file is stale; that is this machine's business, not ours.
    assert!(wait_until(Duration::from_secs(30), || !std::path::Path::new(&format!("/proc/{postmaster}"))
        .exists()));
    // A plain start works: nothing holds the old shared memory.
    c.start();
    assert!(wait_until(SOON, || c.psql(
        "postgres",
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'timescaledb_telemetry launcher'"
    ) == "1"));
}

#[test]
fn a_redirect_is_a_logged_failure_and_its_target_receives_nothing() {
    let target = Endpoint::start(Answer::version("0.1.0"));
    for status in [307, 301] {
        let ep = Endpoint::start(Answer::Redirect { status, location: target.url() });
        let c = cluster_for(&ep);
        c.create_db_with_extension("app");
        let line = format!(
            "telemetry report for database \"app\" failed: HTTP status {status} (redirects are not followed)"
        );
        assert!(c.wait_for_log(SOON, |l| l.contains(&line)), "{}", c.server_log());
        assert_eq!(ep.count(), 1);
        assert_eq!(
            c.psql("app", "SELECT last_status, last_success IS NULL FROM get_telemetry_status()"),
            format!("{status}|t")
        );
    }
    assert_eq!(target.count(), 0, "the report was sent where the redirect pointed");
}

#[test]
fn a_database_name_with_a_line_break_is_one_log_line() {
    let ep = Endpoint::start(Answer::json(503, "{}"));
    let c = cluster_for(&ep);
    c.psql("postgres", "CREATE DATABASE \"two\nlines\"");
    c.psql("two\nlines", "CREATE EXTENSION timescaledb_telemetry");
    let line = "telemetry report for database \"two\\nlines\" failed: HTTP status 503";
    assert!(c.wait_for_log(SOON, |l| l.contains(line)), "{}", c.server_log());
    assert!(!c.server_log().lines().any(|l| l.starts_with("lines\"")), "{}", c.server_log());
}

#[test]
fn a_collector_held_past_its_bound_is_a_failure_and_holds_up_nothing_else() {
    let ep = Endpoint::start(Answer::version("0.1.0"));
    let c = Cluster::reporting_to(&ep, "2s", "timescaledb_telemetry.timeout = '2s'");
    c.create_db_with_extension("stuck");
    c.create_db_with_extension("fine");
    let fine = c.report("fine")["db_uuid"].as_str().unwrap().to_string();
    assert!(wait_until(SOON, || !ep.requests_for(&fine).is_empty()));
    let launcher = c.psql(
        "postgres",
        "SELECT pid FROM pg_stat_activity WHERE backend_type = 'timescaledb_telemetry launcher'",
    );
    // Catch a collector of "stuck": hold our table so that its next visit waits for the
    // lock (up to its 2 s lock timeout), and stop that process there (as a disk that never
    // answers would).
    let mut holder = c.hold_metadata("stuck", 10);
    let mut collector = String::new();
    assert!(wait_until(Duration::from_secs(10), || {
        collector = c.psql(
            "postgres",
            "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a USING (pid)
              WHERE NOT l.granted AND a.backend_type = 'timescaledb_telemetry collector'",
        );
        !collector.is_empty()
    }));
    assert!(std::process::Command::new("kill").args(["-STOP", &collector]).status().unwrap().success());
    // Stopped by the launcher, it exits with an error: expected here, and only here.
    c.worker_exit_expected.set(true);
    let _ = holder.kill();
    let _ = holder.wait();
    // The launcher gives up on it at its bound, says so while it is still stuck, ...
    let line = "telemetry report for database \"stuck\" failed: the collector did not finish within 60 s";
    let logged = c.wait_for_log(Duration::from_secs(80), |l| l.contains(line));
    let still_stopped = running(&collector);
    std::process::Command::new("kill").args(["-CONT", &collector]).status().unwrap();
    assert!(logged, "{}", c.server_log());
    assert!(still_stopped, "the collector exited by itself; the bound was not what ended it");
    // ... and, once the postmaster has seen it go, reports the other database again.
    let before = ep.requests_for(&fine).len();
    assert!(wait_until(SOON, || ep.requests_for(&fine).len() > before), "{}", c.server_log());
    assert_eq!(
        c.psql(
            "postgres",
            "SELECT pid FROM pg_stat_activity WHERE backend_type = 'timescaledb_telemetry launcher'"
        ),
        launcher,
        "the launcher was restarted"
    );
}

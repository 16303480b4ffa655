//! SPEC §9: a version check that protects — advisories that affect the installed version,
//! answers signed with minisign (Debian's `minisign` tool, as a release manager would), an
//! air-gapped directory instead of a network, and a record of what was sent.

use crate::common::endpoint::{Answer, Endpoint};
use crate::common::{wait_until, Cluster};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const SOON: Duration = Duration::from_secs(15);
const INSTALLED: &str = env!("CARGO_PKG_VERSION");

/// An answer announcing 9.9.9 with three advisories: one affecting every version up to (not
/// including) 9.9.9, one fixed long ago, and one that is no object.
fn answer_with_advisories() -> String {
    r#"{"current_timescaledb_version": "9.9.9", "advisories": [
        {"id": "GHSA-test-0001", "aliases": ["CVE-2026-0001"], "summary": "Collector runs as superuser\nfor everyone",
         "database_specific": {"severity": "HIGH"},
         "affected": [{"package": {"ecosystem": "crates.io", "name": "timescaledb_telemetry"},
                       "ranges": [{"type": "SEMVER", "events": [{"introduced": "0.1.0"}, {"fixed": "9.9.9"}]}]}],
         "references": [{"type": "ADVISORY", "url": "https://example.com/GHSA-test-0001"}]},
        {"id": "GHSA-test-0002", "summary": "old", "affected": [{"ranges": [{"type": "SEMVER",
         "events": [{"introduced": "0"}, {"fixed": "0.0.1"}]}]}]},
        7
    ]}"#
    .to_string()
}

/// A minisign key pair made by the stock tool, without a password, in its own directory.
struct Key {
    dir: PathBuf,
}

impl Key {
    fn new(dir: &Path) -> Key {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("minisign")
            .args(["-G", "-W", "-f", "-p"])
            .arg(dir.join("key.pub"))
            .arg("-s")
            .arg(dir.join("key.sec"))
            .output()
            .expect("minisign (scripts/setup-debian installs it)");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        Key { dir: dir.to_path_buf() }
    }

    /// The public key as `timescaledb_telemetry.trusted_keys` takes it: the `.pub` file's
    /// base64 line.
    fn public(&self) -> String {
        std::fs::read_to_string(self.dir.join("key.pub")).unwrap().lines().nth(1).unwrap().to_string()
    }

    /// Signs `file` as a release manager would (`minisign -S`), making `<file>.minisig`.
    fn sign(&self, file: &Path) -> String {
        self.sign_with(file, &[])
    }

    /// The same with more arguments to minisign (`-t <trusted comment>`).
    fn sign_with(&self, file: &Path, more: &[&str]) -> String {
        let out = Command::new("minisign")
            .args(["-S", "-s"])
            .arg(self.dir.join("key.sec"))
            .arg("-m")
            .arg(file)
            .args(more)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        std::fs::read_to_string(format!("{}.minisig", file.display())).unwrap()
    }

    /// An HTTP answer of `body` signed with this key: the `.minisig` in the header, base64.
    fn signed(&self, body: &str) -> Answer {
        self.signed_with(body, &[])
    }

    fn signed_with(&self, body: &str, more: &[&str]) -> Answer {
        let file = self.dir.join("answer.json");
        std::fs::write(&file, body).unwrap();
        let minisig = self.sign_with(&file, more);
        let encoded = Command::new("base64")
            .args(["-w", "0"])
            .arg(format!("{}.minisig", file.display()))
            .output()
            .unwrap();
        assert!(!minisig.is_empty());
        Answer::Signed {
            body: body.as_bytes().to_vec(),
            signature: String::from_utf8(encoded.stdout).unwrap(),
        }
    }
}

fn status(c: &Cluster, db: &str, column: &str) -> String {
    c.psql(db, &format!("SELECT {column} FROM get_telemetry_status()"))
}

/// Wakes the launcher for `db` and waits for the status its answer leaves.
fn report_again(c: &Cluster, db: &str) {
    let before = status(c, db, "last_attempt");
    c.psql(db, "SELECT _timescaledb_catalog.wake_telemetry_launcher()");
    assert!(
        wait_until(SOON, || status(c, db, "last_attempt") != before
            && !status(c, db, "next_attempt").is_empty()),
        "{db} was not reported again:\n{}",
        c.server_log()
    );
}

#[test]
fn an_advisory_affecting_us_is_one_warning_for_the_cluster_and_a_row_for_pg_monitor() {
    let ep = Endpoint::start(Answer::json(200, &answer_with_advisories()));
    let c = Cluster::reporting_to(&ep, "1h", "");
    for db in ["a", "b"] {
        c.create_db_with_extension(db);
    }
    assert!(wait_until(SOON, || ["a", "b"].iter().all(|db| status(&c, db, "latest_version") == "9.9.9")));
    let log = c.server_log();
    let warning = format!(
        "WARNING:  the installed \"timescaledb_telemetry\" {INSTALLED} is affected by security advisory \
         GHSA-test-0001 (high): Collector runs as superuser"
    );
    assert_eq!(log.lines().filter(|l| l.contains(&warning)).count(), 1, "{log}");
    assert!(log.contains("DETAIL:  Fixed in 9.9.9. https://example.com/GHSA-test-0001"), "{log}");
    assert!(log.contains("HINT:  Install the new version of the timescaledb_telemetry package"), "{log}");
    assert!(!log.contains("GHSA-test-0002"), "an advisory that does not affect us was logged:\n{log}");

    c.psql("postgres", "CREATE ROLE watcher LOGIN IN ROLE pg_monitor; CREATE ROLE nobody LOGIN");
    let rows =
        "SELECT id, aliases, severity, fixed_in, url, first_seen <= now() FROM get_telemetry_advisories()";
    let expected = "GHSA-test-0001|{CVE-2026-0001}|high|9.9.9|https://example.com/GHSA-test-0001|t";
    assert_eq!(c.try_psql_as("a", "watcher", rows).as_deref(), Ok(expected));
    let refused = c.try_psql_as("a", "nobody", rows).unwrap_err();
    assert!(refused.contains("permission denied for function get_telemetry_advisories"), "{refused}");
    let first_seen = c.psql("a", "SELECT first_seen FROM get_telemetry_advisories()");
    c.restart();
    // The new launcher's first answer keeps what the old one saw, and says nothing again
    // within the interval.
    report_again(&c, "b");
    assert_eq!(
        c.psql("b", "SELECT first_seen FROM get_telemetry_advisories()"),
        first_seen,
        "lost by a restart"
    );
    assert_eq!(
        c.server_log().lines().filter(|l| l.contains(&warning)).count(),
        1,
        "logged again after a restart"
    );
}

#[test]
fn with_trusted_keys_only_a_signed_answer_is_used() {
    let ep = Endpoint::start(Answer::version("0.0.1"));
    let dir = PathBuf::from(format!("/tmp/timescaledb_telemetry_tests/keys-{}", std::process::id()));
    let (release, stranger) = (Key::new(&dir.join("release")), Key::new(&dir.join("stranger")));
    let c = Cluster::reporting_to(
        &ep,
        "1h",
        &format!("timescaledb_telemetry.trusted_keys = '{}'", release.public()),
    );
    ep.set_answer(release.signed(&answer_with_advisories()));
    c.create_db_with_extension("app");
    assert!(wait_until(SOON, || status(&c, "app", "latest_version") == "9.9.9"), "{}", c.server_log());
    assert_eq!(c.psql("app", "SELECT count(*) FROM get_telemetry_advisories()"), "1");

    // Unsigned, signed by another key, a signature that is not base64: the report was
    // delivered, and nothing of the answer is used.
    let forged = r#"{"current_timescaledb_version": "0.0.2", "advisories": []}"#;
    for answer in [
        Answer::json(200, forged),
        stranger.signed(forged),
        Answer::Signed { body: forged.as_bytes().to_vec(), signature: "%%% not base64 %%%".into() },
    ] {
        ep.set_answer(answer.clone());
        report_again(&c, "app");
        assert_eq!(status(&c, "app", "last_error"), "answer signature not valid", "{answer:?}");
        assert_eq!(status(&c, "app", "latest_version"), "9.9.9", "{answer:?}");
        assert_eq!(c.psql("app", "SELECT count(*) FROM get_telemetry_advisories()"), "1", "{answer:?}");
        // Delivered (the endpoint has the report); no status: the answer failed its check.
        assert_eq!(
            c.psql("app", "SELECT ok, error FROM get_telemetry_history() LIMIT 1"),
            "t|answer signature not valid"
        );
    }
    assert!(c
        .server_log()
        .contains("telemetry report for database \"app\" failed: answer signature not valid"));

    // An answer validly signed, but before the one in use (by its signed timestamp): an old
    // one replayed, perhaps to hide an advisory. Refused.
    ep.set_answer(release.signed_with(forged, &["-t", "timestamp:1000000000\tfile:old.json"]));
    report_again(&c, "app");
    assert_eq!(status(&c, "app", "last_error"), "answer signed before the last one used (replayed?)");
    assert_eq!(c.psql("app", "SELECT count(*) FROM get_telemetry_advisories()"), "1");

    // A key that does not parse is refused where it is set, with PostgreSQL's usual error.
    let bad = c
        .try_psql("postgres", "ALTER SYSTEM SET timescaledb_telemetry.trusted_keys = 'RWQ-not-a-key'")
        .unwrap_err();
    assert!(bad.contains("invalid value for parameter \"timescaledb_telemetry.trusted_keys\""), "{bad}");
    assert!(bad.contains("Key 1 is not a minisign public key"), "{bad}");
}

/// A typo in the configuration file the server starts with never turns the check off (the
/// setting would otherwise fall back to its default, no key): no answer is used.
#[test]
fn a_server_started_with_keys_that_do_not_parse_uses_no_answer() {
    let ep = Endpoint::start(Answer::version("9.9.9"));
    let c = Cluster::reporting_to(&ep, "1h", "timescaledb_telemetry.trusted_keys = 'RWQ-typo'");
    c.create_db_with_extension("app");
    let refused = wait_until(SOON, || status(&c, "app", "last_error") == "answer signature not valid");
    assert!(refused, "{}", c.server_log());
    assert_eq!(status(&c, "app", "latest_version"), "");
    assert!(c
        .server_log()
        .contains("timescaledb_telemetry.trusted_keys does not parse, so no answer will be used"));
}

#[test]
fn air_gapped_reports_go_to_a_directory_and_nothing_to_the_network() {
    // Any request the worker made would go to this proxy (every proxy variable names it).
    let proxy = Endpoint::start(Answer::version("0.0.1"));
    let proxy_url = format!("http://127.0.0.1:{}", proxy.port);
    let dir = PathBuf::from(format!("/tmp/timescaledb_telemetry_tests/airgap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    Command::new("chown").arg("postgres:postgres").arg(&dir).status().unwrap();
    let key = Key::new(&dir.with_extension("key"));
    let env = [
        ("HTTP_PROXY", proxy_url.as_str()),
        ("HTTPS_PROXY", proxy_url.as_str()),
        ("ALL_PROXY", proxy_url.as_str()),
    ];
    let conf = format!(
        "timescaledb_telemetry.endpoint = 'file://{}'\ntimescaledb_telemetry.trusted_keys = '{}'",
        dir.display(),
        key.public()
    );
    let c = Cluster::preloaded_with_env(&conf, &env);
    c.create_db_with_extension("app");
    let uuid = c.report("app")["db_uuid"].as_str().unwrap().to_string();
    let written = dir.join(format!("{uuid}.json"));
    assert!(wait_until(SOON, || written.exists()), "no report in {}:\n{}", dir.display(), c.server_log());
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&written).unwrap()).unwrap();
    assert_eq!(report["db_uuid"], uuid.as_str());
    // No manifest yet: delivered, nothing answered.
    assert!(wait_until(SOON, || !status(&c, "app", "last_success").is_empty()));
    assert_eq!(status(&c, "app", "latest_version"), "");

    // A manifest without its signature is not used ...
    let manifest = dir.join("manifest.json");
    std::fs::write(&manifest, answer_with_advisories()).unwrap();
    report_again(&c, "app");
    assert_eq!(status(&c, "app", "last_error"), "answer signature not valid");
    assert_eq!(status(&c, "app", "latest_version"), "");
    // ... and one the operator carried in signed by the release key is.
    key.sign(&manifest);
    report_again(&c, "app");
    assert_eq!(status(&c, "app", "latest_version"), "9.9.9", "{}", c.server_log());
    let advisory = "is affected by security advisory GHSA-test-0001 (high)";
    assert!(c.wait_for_log(SOON, |log| log.contains(advisory)), "{}", c.server_log());
    // A manifest that is a directory: one line, and the version stays.
    std::fs::remove_file(&manifest).unwrap();
    std::fs::create_dir(&manifest).unwrap();
    report_again(&c, "app");
    assert!(status(&c, "app", "last_error").ends_with("manifest.json is not a file"), "{}", c.server_log());
    assert_eq!(proxy.count(), 0, "the network was used");

    // A directory that is not there: a one-line failure.
    c.psql("postgres", "ALTER SYSTEM SET timescaledb_telemetry.endpoint = 'file:///nonexistent/telemetry'");
    c.reload();
    report_again(&c, "app");
    let line = "telemetry report for database \"app\" failed: could not write /nonexistent/telemetry/";
    assert!(c.wait_for_log(SOON, |log| log.contains(line)), "{}", c.server_log());
    assert_eq!(proxy.count(), 0, "the network was used");

    // The proxy was listening all along: an http endpoint does reach it.
    c.psql(
        "postgres",
        "ALTER SYSTEM SET timescaledb_telemetry.endpoint = 'http://telemetry.invalid/v1/metrics'",
    );
    c.reload();
    report_again(&c, "app");
    assert!(proxy.wait_for(1, SOON), "the proxy heard nothing even over http:\n{}", c.server_log());
}

#[test]
fn the_history_and_the_last_sent_report_say_exactly_what_went_out() {
    let ep = Endpoint::start(Answer::version("0.0.1"));
    let c = Cluster::reporting_to(&ep, "1h", "");
    // Before any answer: nothing sent, no history.
    ep.hold_answers();
    c.create_db_with_extension("app");
    assert!(ep.wait_for(1, SOON));
    assert_eq!(
        c.psql("app", "SELECT get_telemetry_last_sent() IS NULL, count(*) FROM get_telemetry_history()"),
        "t|0"
    );
    ep.release_answers();
    c.wait_settled("app");
    // The newest row and the latest request (a database may be visited twice at first).
    let body = ep.requests().last().unwrap().body.clone();
    let file = c.dir.join("sent.json");
    std::fs::write(&file, &body).unwrap();
    let sha = Command::new("sha256sum").arg(&file).output().unwrap();
    let sha = String::from_utf8(sha.stdout).unwrap().split_whitespace().next().unwrap().to_string();
    assert_eq!(
        c.psql(
            "app",
            "SELECT ok, status, error IS NULL, bytes, sha256, ms >= 0 FROM get_telemetry_history() LIMIT 1"
        ),
        format!("t|200|t|{}|{sha}|t", body.len())
    );
    let last: serde_json::Value =
        serde_json::from_str(&c.psql("app", "SELECT get_telemetry_last_sent()")).unwrap();
    assert_eq!(last, ep.requests().last().unwrap().json());

    // A refused report (one that differs: a metadata row more): in the history (newest
    // first), and the last sent stays the accepted one.
    c.psql("app", "INSERT INTO _timescaledb_catalog.metadata VALUES ('site', 'refused', true)");
    ep.set_answer(Answer::json(503, "{}"));
    report_again(&c, "app");
    let refused = ep.requests().last().unwrap().json();
    assert_eq!(refused["db_metadata"]["site"], "refused");
    assert_eq!(
        c.psql(
            "app",
            "SELECT string_agg(ok || '/' || status || '/' || coalesce(error, '-'), ',')
               FROM (SELECT * FROM get_telemetry_history() LIMIT 2) newest"
        ),
        "false/503/HTTP status 503,true/200/-"
    );
    let still: serde_json::Value =
        serde_json::from_str(&c.psql("app", "SELECT get_telemetry_last_sent()")).unwrap();
    assert_eq!(still, last);
    assert_ne!(still, refused);

    // Same rights as the status: nobody else reads them.
    c.psql("postgres", "CREATE ROLE nobody LOGIN");
    for f in ["get_telemetry_history()", "get_telemetry_last_sent()"] {
        let refused = c.try_psql_as("app", "nobody", &format!("SELECT * FROM {f}")).unwrap_err();
        assert!(refused.contains("permission denied for function"), "{refused}");
    }
}

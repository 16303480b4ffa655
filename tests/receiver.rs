//! The receiver (SPEC §10): a real process storing into a real cluster's database, the
//! extension's worker reporting to it, its page in a real headless Chromium, and the faults
//! it must survive (killed under load, its PostgreSQL restarted under load).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::receiver::{new_uuid, report, wait_secs, Receiver, TOKEN};
use crate::common::Cluster;

fn count(store: &Cluster, sql: &str) -> i64 {
    store.psql("fleet", sql).trim().parse().unwrap_or_else(|_| panic!("not a count: {sql}"))
}

#[test]
fn a_report_of_each_shape_is_stored_and_answered_with_the_signed_manifest() {
    let store = Cluster::plain("");
    store.create_db_with_extension("app");
    let receiver = Receiver::start(&store, "fleet", &[]);
    // A real report of the extension, and TimescaleDB's own two shapes.
    let ours = store.report("app");
    let typed = serde_json::json!({
        "db_uuid": new_uuid(), "telemetry_version": 2, "timescaledb_version": "2.29.2",
        "postgresql_version": "17.11", "data_volume": 123456789_i64,
        "relations": {"tables": {"num_relations": 3, "heap_size": 8192}},
    });
    let seed = serde_json::json!({
        "db_uuid": new_uuid(), "timescaledb_version": "1.7.5", "postgresql_version": "12.9",
        "data_volume": "7814503", "num_hypertables": "2", "related_extensions": {"PostGIS": "false"},
    });
    // Fields the columns cannot use (a version too long, a number as the PostgreSQL
    // version, a negative volume): stored, the columns NULL.
    let odd = serde_json::json!({
        "db_uuid": new_uuid(), "timescaledb_version": "9".repeat(65), "postgresql_version": 17,
        "data_volume": "-5",
    });
    let pg = ours["postgresql_version"].as_str().unwrap().to_string();
    for (report, columns) in [
        (&ours, format!("0.4.0|{pg}|{}", ours["data_volume"].as_str().unwrap())),
        (&typed, "2.29.2|17.11|123456789".to_string()),
        (&seed, "1.7.5|12.9|7814503".to_string()),
        (&odd, "||".to_string()),
    ] {
        let (status, signature, body) = receiver.post(report.to_string().as_bytes());
        assert_eq!(status, 200, "{body}\n{}", receiver.log());
        // The answer is the manifest, signed: verified by the stock minisign tool.
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(answer["current_timescaledb_version"], "0.4.1");
        assert_eq!(answer["advisories"][0]["id"], "TST-2026-0001");
        verify_with_minisign(&receiver, &body, &signature.expect("a signature header"));
        // Stored, as received, with the columns the page reads.
        let uuid = report["db_uuid"].as_str().unwrap();
        let row = store.psql(
            "fleet",
            &format!(
                "SELECT r.version, r.postgresql_version, r.data_bytes, r.report = '{}'::jsonb, d.reports \
                 FROM receiver.reports r JOIN receiver.databases d USING (db_uuid) WHERE db_uuid = '{uuid}'",
                report.to_string().replace('\'', "''")
            ),
        );
        assert_eq!(row, format!("{columns}|t|1"));
    }
    // A second report of a database: one more history row, its latest row updated.
    let uuid = ours["db_uuid"].as_str().unwrap();
    let (status, _, _) = receiver.post(report(uuid, "0.4.1", 99).as_bytes());
    assert_eq!(status, 200);
    assert_eq!(
        store.psql(
            "fleet",
            &format!(
                "SELECT l.version, l.data_bytes, d.reports FROM receiver.latest l \
                 JOIN receiver.databases d USING (db_uuid) WHERE db_uuid = '{uuid}'"
            )
        ),
        "0.4.1|99|2"
    );
    assert_eq!(count(&store, &format!("SELECT count(*) FROM receiver.reports WHERE db_uuid = '{uuid}'")), 2);
}

/// `minisign -V` of the answer with the receiver's public key, as an operator would check.
fn verify_with_minisign(receiver: &Receiver, body: &str, signature: &str) {
    let dir = &receiver.dir;
    std::fs::write(dir.join("answer.json"), body).unwrap();
    let minisig = Command::new("base64")
        .arg("-d")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(signature.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    std::fs::write(dir.join("answer.json.minisig"), &minisig.stdout).unwrap();
    let out = Command::new("minisign")
        .args(["-V", "-q", "-p"])
        .arg(dir.join("receiver.pub"))
        .arg("-m")
        .arg(dir.join("answer.json"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "minisign -V: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sends `head` (and then `body` from a thread, if any) on a raw connection and returns the
/// answer (status line, headers and body, up to the server's closing) and how long it took.
fn raw_exchange(
    url: &str,
    head: &str,
    body: impl FnOnce(&mut TcpStream) + Send + 'static,
) -> (String, Duration) {
    let address = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let started = Instant::now();
    stream.write_all(head.as_bytes()).unwrap();
    let mut writer = stream.try_clone().unwrap();
    std::thread::spawn(move || body(&mut writer));
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    (String::from_utf8_lossy(&answer).to_string(), started.elapsed())
}

#[test]
fn every_bad_request_gets_a_bounded_one_line_refusal_and_nothing_is_stored() {
    let store = Cluster::plain("");
    let receiver = Receiver::start(&store, "fleet", &[]);
    let uuid = new_uuid();
    for (body, reason) in [
        ("this is not json".to_string(), "the report is not JSON"),
        ("[1, 2, 3]".to_string(), "the report is not a JSON object"),
        ("{\"timescaledb_version\": \"0.4.0\"}".to_string(), "the report has no db_uuid"),
        (
            "{\"db_uuid\": \"6ba7b810-9dad-11d1-80b4-00c04fd430c8\"}".to_string(),
            "db_uuid is not a version 4 UUID",
        ),
        (format!("{{\"db_uuid\": \"{uuid}\", \"x\": \"a\\u0000b\"}}"), "NUL character"),
    ] {
        let (status, _, answer) = receiver.post(body.as_bytes());
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer.trim_end(), answer.lines().next().unwrap_or(""), "one line: {answer}");
        assert!(answer.contains(reason), "{answer} (wanted {reason})");
    }
    // Over 512 KiB, announced and sent: refused, and the reason said.
    let big = report(&uuid, "0.4.0", 1)
        .replace("\"os_name\"", &format!("\"pad\": \"{}\", \"os_name\"", "x".repeat(600 * 1024)));
    let head = format!("POST /v1/metrics HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", big.len());
    let (answer, _) = raw_exchange(&receiver.url, &head, move |w| {
        let _ = w.write_all(big.as_bytes());
    });
    assert!(
        answer.starts_with("HTTP/1.1 413") && answer.ends_with("the report is larger than 524288 bytes\n"),
        "{answer}"
    );
    // 100 MB announced: refused from the header alone, the body never read.
    let (status, took) = raw_exchange(
        &receiver.url,
        "POST /v1/metrics HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 104857600\r\n\r\n",
        |_| {},
    );
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    // 100 MB chunked, with no length: refused once 512 KiB are read.
    let (status, _) = raw_exchange(
        &receiver.url,
        "POST /v1/metrics HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        |w| {
            let chunk = format!("100000\r\n{}\r\n", "x".repeat(0x100000));
            for _ in 0..100 {
                if w.write_all(chunk.as_bytes()).is_err() {
                    return;
                }
            }
        },
    );
    assert!(status.starts_with("HTTP/1.1 413") && status.contains("larger than 524288"), "{status}");
    // A slow drip: one byte a second of a 1 000-byte report; cut off at the request's 10 s.
    let (status, took) = raw_exchange(
        &receiver.url,
        "POST /v1/metrics HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
        |w| {
            for _ in 0..60 {
                std::thread::sleep(Duration::from_secs(1));
                if w.write_all(b" ").is_err() {
                    return;
                }
            }
        },
    );
    assert!(
        status.starts_with("HTTP/1.1 408")
            && status.ends_with("\r\n\r\nthe request was not complete within 10 s\n"),
        "{status}"
    );
    assert!(took >= Duration::from_secs(9) && took < Duration::from_secs(30), "{took:?}");
    // Headers dripped one byte a second: the connection is closed at the 10 s header bound.
    let (status, took) = raw_exchange(&receiver.url, "POST /v1/metrics HTTP/1.1\r\n", |w| {
        for _ in 0..60 {
            std::thread::sleep(Duration::from_secs(1));
            if w.write_all(b"X").is_err() {
                return;
            }
        }
    });
    assert_eq!(status, "", "an answer to headers never completed");
    assert!(took >= Duration::from_secs(9) && took < Duration::from_secs(30), "{took:?}");
    // The page and the API without the token, or with a wrong one.
    for (path, token) in [
        ("/", None),
        ("/api/fleet", None),
        ("/api/fleet", Some("wrong-token-0123456789")),
        (&format!("/databases/{uuid}")[..], Some("x")),
    ] {
        let (status, body) = receiver.get(path, token);
        assert_eq!(status, 401, "{path}: {body}");
        assert!(body.contains("the page token is missing or wrong"), "{body}");
    }
    let (status, body) = receiver.get("/login?token=wrong-token-0123456789", None);
    assert_eq!(status, 401);
    assert!(body.contains("That token is not the page token"), "{body}");
    // The form, and its answer.
    let (status, body) = receiver.get("/login", None);
    assert!(status == 200 && body.contains("<form method=\"post\" action=\"/login\">"), "{body}");
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    let form = |token: &str| {
        crate::common::receiver::answer(
            agent.post(&format!("{}/login", receiver.url)).send_form(&[("token", token)]),
        )
    };
    assert_eq!(form("wrong-token-0123456789").0, 401);
    assert_eq!(form(TOKEN).0, 303);
    // Unknown databases, and what is not a UUID.
    for path in [format!("/databases/{uuid}"), "/api/databases/nope".to_string()] {
        let (status, body) = receiver.get(&path, Some(TOKEN));
        assert_eq!(status, 404, "{path}: {body}");
    }
    // A right token, and a `next` that would leave the site: home instead.
    for (next, location) in [
        ("/api/fleet", "/api/fleet"),
        ("//evil.invalid/", "/"),
        ("https://evil.invalid/", "/"),
        ("/\\evil.invalid/", "/"),
        ("/\t/evil.invalid/", "/"),
    ] {
        let r = agent
            .get(&format!("{}/login", receiver.url))
            .query("token", TOKEN)
            .query("next", next)
            .call()
            .unwrap();
        assert_eq!((r.status(), r.header("Location")), (303, Some(location)));
        assert!(r.header("Set-Cookie").unwrap().contains("HttpOnly; SameSite=Strict"));
    }
    assert_eq!(count(&store, "SELECT count(*) FROM receiver.reports"), 0);
    assert_eq!(count(&store, "SELECT count(*) FROM receiver.databases"), 0);
    // Still serving.
    assert_eq!(receiver.post(report(&uuid, "0.4.0", 1).as_bytes()).0, 200);
}

#[test]
fn retention_drops_whole_partitions_and_databases_not_seen_since() {
    let store = Cluster::plain("");
    let mut receiver = Receiver::start(&store, "fleet", &[("RECEIVER_RETENTION_DAYS", "30")]);
    let (old, kept) = (new_uuid(), new_uuid());
    // Days 31 and 29 before today (UTC, as the receiver counts), as a receiver running then
    // would have made them, each with a report; a database last seen on each.
    let day = |n: u32| format!("((now() AT TIME ZONE 'UTC')::date - {n})");
    let name = |n: u32| {
        store.psql("fleet", &format!("SELECT 'receiver.reports_p' || to_char({}, 'YYYYMMDD')", day(n)))
    };
    for (n, uuid) in [(31, &old), (29, &kept)] {
        let d = day(n);
        store.psql(
            "fleet",
            &format!(
                "CREATE TABLE {} PARTITION OF receiver.reports FOR VALUES \
                   FROM (({d})::timestamp AT TIME ZONE 'UTC') TO (({d} + 1)::timestamp AT TIME ZONE 'UTC'); \
                 INSERT INTO receiver.reports (received_at, db_uuid, report) \
                   VALUES (({d} + time '12:00') AT TIME ZONE 'UTC', '{uuid}', '{{}}'); \
                 INSERT INTO receiver.databases (db_uuid, first_seen, last_seen, report) \
                   VALUES ('{uuid}', ({d} + time '12:00') AT TIME ZONE 'UTC', ({d} + time '12:00') AT TIME ZONE 'UTC', '{{}}');",
                name(n)
            ),
        );
    }
    let exists = |table: &str| store.psql("fleet", &format!("SELECT to_regclass('{table}') IS NOT NULL"));
    let (old_day, kept_day) = (name(31), name(29));
    receiver.kill();
    receiver.restart();
    assert_eq!((exists(&old_day).as_str(), exists(&kept_day).as_str()), ("f", "t"), "{}", receiver.log());
    assert!(receiver.log().contains("reports past retention dropped"), "{}", receiver.log());
    for (uuid, want) in [(&old, 0), (&kept, 1)] {
        assert_eq!(
            count(&store, &format!("SELECT count(*) FROM receiver.reports WHERE db_uuid = '{uuid}'")),
            want
        );
        assert_eq!(
            count(&store, &format!("SELECT count(*) FROM receiver.databases WHERE db_uuid = '{uuid}'")),
            want
        );
    }
    // Two days ahead exist; a day without its partition gets one when a report needs it.
    assert_eq!(
        exists(
            &store.psql(
                "fleet",
                &format!("SELECT 'receiver.reports_p' || to_char({} + 4, 'YYYYMMDD')", day(2))
            )
        ),
        "t"
    );
    let today = name(0);
    store.psql("fleet", &format!("DROP TABLE {today}"));
    assert_eq!(receiver.post(report(&new_uuid(), "0.4.0", 1).as_bytes()).0, 200, "{}", receiver.log());
    assert_eq!(exists(&today), "t");
    assert!(receiver.log().contains("no partition for a report"), "{}", receiver.log());
}

/// What a load saw so far: the db_uuids answered 200, and the other answers by status (0:
/// no answer at all).
#[derive(Default)]
struct Seen {
    ok: Mutex<Vec<String>>,
    other: Mutex<Vec<u16>>,
}

/// Eight clients posting reports of fresh databases to a receiver, from `start` to `finish`.
struct Load {
    stop: Arc<AtomicBool>,
    seen: Arc<Seen>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(url: &str) -> Load {
        let (stop, seen) = (Arc::new(AtomicBool::new(false)), Arc::new(Seen::default()));
        let threads = (0..8)
            .map(|_| {
                let (url, stop, seen) = (url.to_string(), stop.clone(), seen.clone());
                std::thread::spawn(move || {
                    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(20)).build();
                    while !stop.load(Ordering::Relaxed) {
                        let uuid = new_uuid();
                        let result =
                            agent.post(&format!("{url}/v1/metrics")).send_string(&report(&uuid, "0.4.0", 1));
                        match crate::common::receiver::answer(result) {
                            (200, _, _) => seen.ok.lock().unwrap().push(uuid),
                            (status, _, _) => {
                                seen.other.lock().unwrap().push(status);
                                std::thread::sleep(Duration::from_millis(20));
                            }
                        }
                    }
                })
            })
            .collect();
        Load { stop, seen, threads }
    }

    /// Waits until `n` reports were answered 200 (up to 30 s).
    fn answered(&self, n: usize) -> bool {
        wait_secs(30, || self.seen.ok.lock().unwrap().len() >= n)
    }

    /// Waits until `n` requests got `status` (0: no answer at all; up to 30 s).
    fn got(&self, status: u16, n: usize) -> bool {
        wait_secs(30, || self.seen.other.lock().unwrap().iter().filter(|s| **s == status).count() >= n)
    }

    /// Stops the clients: the db_uuids answered 200, and the other answers' statuses.
    fn finish(self) -> (Vec<String>, Vec<u16>) {
        self.stop.store(true, Ordering::Relaxed);
        self.threads.into_iter().for_each(|t| t.join().unwrap());
        let ok = self.seen.ok.lock().unwrap().clone();
        let other = self.seen.other.lock().unwrap().clone();
        (ok, other)
    }
}

fn stored_of(store: &Cluster, uuids: &[String]) -> i64 {
    let list = uuids.iter().map(|u| format!("'{u}'")).collect::<Vec<_>>().join(",");
    if list.is_empty() {
        return 0;
    }
    count(store, &format!("SELECT count(DISTINCT db_uuid) FROM receiver.reports WHERE db_uuid IN ({list})"))
}

#[test]
fn a_receiver_killed_under_load_lost_no_report_it_answered() {
    let store = Cluster::plain("");
    let mut receiver = Receiver::start(&store, "fleet", &[]);
    let load = Load::start(&receiver.url);
    assert!(load.answered(200));
    receiver.kill();
    assert!(load.got(0, 8), "no request failed after the kill");
    let (ok, _) = load.finish();
    assert_eq!(stored_of(&store, &ok), ok.len() as i64, "a report answered 200 is missing");
    // Started again, it goes on.
    receiver.restart();
    assert_eq!(receiver.post(report(&new_uuid(), "0.4.0", 1).as_bytes()).0, 200);
}

#[test]
fn a_terminated_receiver_finishes_the_requests_in_flight_and_exits() {
    let store = Cluster::plain("");
    let mut receiver = Receiver::start(&store, "fleet", &[]);
    let load = Load::start(&receiver.url);
    assert!(load.answered(100));
    let status = receiver.terminate(20);
    let (ok, other) = load.finish();
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{}", receiver.log());
    assert!(
        receiver.log().contains("shutting down") && receiver.log().ends_with("stopped\n"),
        "{}",
        receiver.log()
    );
    assert_eq!(stored_of(&store, &ok), ok.len() as i64, "a report answered 200 is missing");
    // Whatever was not answered 200 got no answer at all (refused once the listener closed),
    // never an error status from a half-stopped receiver.
    assert!(other.iter().all(|s| *s == 0), "{other:?}");
}

#[test]
fn a_store_restarted_under_load_gives_503s_then_the_receiver_recovers_by_itself() {
    let store = Cluster::plain("");
    let mut receiver = Receiver::start(&store, "fleet", &[]);
    let load = Load::start(&receiver.url);
    assert!(load.answered(100));
    store.stop();
    assert!(load.got(503, 8), "no 503 while the store was down");
    store.start();
    // The same process answers 200 again, with no restart.
    let uuid = new_uuid();
    assert!(
        wait_secs(30, || receiver.post(report(&uuid, "0.4.0", 1).as_bytes()).0 == 200),
        "no recovery:\n{}",
        receiver.log()
    );
    assert!(receiver.running());
    let (ok, other) = load.finish();
    assert!(other.iter().all(|s| *s == 503), "other answers than 503: {other:?}");
    assert_eq!(stored_of(&store, &ok), ok.len() as i64, "a report answered 200 is missing");
    // "store unavailable" logged, at most once a second.
    let log = receiver.log();
    let seconds: Vec<&str> =
        log.lines().filter(|l| l.contains("store unavailable")).map(|l| &l[..19]).collect();
    assert!(!seconds.is_empty(), "{log}");
    let mut unique = seconds.clone();
    unique.dedup();
    assert_eq!(unique.len(), seconds.len(), "more than one line in a second: {seconds:?}");
}

#[test]
fn a_store_that_holds_its_lock_gives_503_not_a_hang_or_an_error() {
    let store = Cluster::plain("");
    let receiver = Receiver::start(&store, "fleet", &[]);
    assert_eq!(receiver.post(report(&new_uuid(), "0.4.0", 1).as_bytes()).0, 200);
    // A session holds the latest-rows table for 12 s: the statement waits its 5 s lock
    // timeout, then the report is refused with 503, and the extension will retry.
    let mut holder = store
        .client("psql", "postgres")
        .args(["-d", "fleet", "-c", "BEGIN; LOCK receiver.databases; SELECT pg_sleep(12); COMMIT;"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_secs(10, || {
        count(&store, "SELECT count(*) FROM pg_locks WHERE relation = 'receiver.databases'::regclass AND mode = 'AccessExclusiveLock' AND granted") == 1
    }));
    let started = Instant::now();
    let (status, _, body) = receiver.post(report(&new_uuid(), "0.4.0", 1).as_bytes());
    assert_eq!((status, body.as_str()), (503, "the store is unavailable; try again later\n"));
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    holder.wait().unwrap();
    assert_eq!(receiver.post(report(&new_uuid(), "0.4.0", 1).as_bytes()).0, 200);
}

/// Debian's Chromium, headless, with a profile of its own and nothing reaching the network.
fn chromium(profile: &std::path::Path, args: &[&str], url: &str) -> std::process::Output {
    // Under `timeout`: a stuck browser fails this test instead of hanging the suite.
    let out = Command::new("timeout")
        .args(["60", "chromium"])
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .expect("chromium (scripts/setup-debian installs it)");
    assert!(out.status.success(), "chromium: {}", String::from_utf8_lossy(&out.stderr));
    out
}

#[test]
fn the_worker_reports_to_the_receiver_and_the_page_shows_it_in_a_real_browser() {
    let cluster = Cluster::preloaded("");
    let receiver = Receiver::start(&cluster, "fleet", &[]);
    let endpoint = format!("{}/v1/metrics", receiver.url);
    cluster.psql("postgres", &format!("ALTER SYSTEM SET timescaledb_telemetry.endpoint = '{endpoint}'"));
    let key = &receiver.public_key;
    cluster.psql("postgres", &format!("ALTER SYSTEM SET timescaledb_telemetry.trusted_keys = '{key}'"));
    cluster.reload();
    cluster.create_db_with_extension("app");
    let uuid = cluster.psql("app", "SELECT value FROM _timescaledb_catalog.metadata WHERE key = 'uuid'");
    // The worker's report arrives and is stored; the signed answer's advisory is logged.
    assert!(
        wait_secs(60, || count(
            &cluster,
            &format!("SELECT count(*) FROM receiver.databases WHERE db_uuid = '{uuid}'")
        ) == 1),
        "no report from the worker:\n{}\n{}",
        receiver.log(),
        cluster.server_log()
    );
    assert!(
        cluster.wait_for_log(Duration::from_secs(30), |log| {
            log.lines().any(|l| l.contains("WARNING") && l.contains("TST-2026-0001"))
        }),
        "no advisory WARNING:\n{}",
        cluster.server_log()
    );
    assert!(!cluster.server_log().contains("answer signature not valid"));
    // History for the chart: the same database a day and half a day ago, larger now.
    cluster.psql(
        "fleet",
        &format!(
            "INSERT INTO receiver.reports (received_at, db_uuid, version, data_bytes, report) \
             SELECT now() - h * interval '1 hour', '{uuid}', '0.4.0', 5000000 - h * 100000, '{{}}' \
             FROM generate_series(2, 20, 6) h"
        ),
    );
    let api = receiver.api("/api/fleet");
    assert_eq!(api["reporting"]["last_day"], 1, "{api}");
    assert_eq!(api["attention"][0]["database"]["db_uuid"], uuid.as_str(), "{api}");
    assert_eq!(api["attention"][0]["why"], "advisory (high)");
    assert_eq!(api["versions"][0]["version"], "0.4.0");
    let detail = receiver.api(&format!("/api/databases/{uuid}"));
    let history = count(&cluster, &format!("SELECT count(*) FROM receiver.reports WHERE db_uuid = '{uuid}'"));
    assert!(history >= 5, "{history}");
    assert_eq!(detail["history"].as_array().unwrap().len() as i64, history, "{detail}");
    // One report of the history, by its time.
    let at = detail["history"][1]["received_at"].as_str().unwrap();
    let (status, body) =
        receiver.get(&format!("/api/databases/{uuid}?at={}", at.replace('+', "%2B")), Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    let shown: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((shown["report_at"].as_str(), &shown["report"]), (Some(at), &serde_json::json!({})));

    // The page, in Chromium, signed in by the token link; its DOM as the browser built it.
    let profile = receiver.dir.join("chromium");
    let login = format!("{}/login?token={TOKEN}", receiver.url);
    let dom = String::from_utf8(chromium(&profile, &["--dump-dom"], &login).stdout).unwrap();
    for id in ["last-day", "last-week", "known"] {
        assert!(dom.contains(&format!("<div class=\"n\" id=\"{id}\">1</div>")), "{id}: {dom}");
    }
    let versions = dom.split("id=\"versions\"").nth(1).unwrap().split("</section>").next().unwrap();
    assert!(versions.contains("TST-2026-0001") && versions.contains("fixed in 0.4.1"), "{versions}");
    let attention = dom.split("id=\"attention\"").nth(1).unwrap().split("</section>").next().unwrap();
    assert!(
        attention.contains(&format!("href=\"/databases/{uuid}\"")) && attention.contains("advisory (high)"),
        "{attention}"
    );
    let largest = dom.split("id=\"largest\"").nth(1).unwrap().split("</section>").next().unwrap();
    assert!(largest.contains("<svg") && largest.contains("<polyline"), "{largest}");
    // The drill-down: its history of five reports, its latest report.
    let drill = format!("{login}&next=/databases/{uuid}");
    let dom = String::from_utf8(chromium(&profile, &["--dump-dom"], &drill).stdout).unwrap();
    assert_eq!(dom.matches("class=\"history-row\"").count() as i64, history, "{dom}");
    assert!(
        dom.contains(&format!("&quot;db_uuid&quot;: &quot;{uuid}&quot;"))
            || dom.contains(&format!("\"db_uuid\": \"{uuid}\"")),
        "{dom}"
    );
    // A screenshot: the page is drawn, with the advisory's badge and the chart's line in
    // their colours.
    let shot = receiver.dir.join("fleet.png");
    chromium(&profile, &["--window-size=1200,1400", &format!("--screenshot={}", shot.display())], &login);
    let decoder = png::Decoder::new(std::fs::File::open(&shot).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!((info.width, info.height), (1200, 1400));
    let channels = info.color_type.samples();
    let has = |rgb: [u8; 3]| pixels.chunks(channels).filter(|p| p[..3] == rgb).count();
    let (badge, line, header) = (has([0xd6, 0x27, 0x28]), has([0x1f, 0x77, 0xb4]), has([0x1d, 0x23, 0x30]));
    assert!(badge > 200, "no high-severity badge drawn: {badge} pixels");
    // The legend's square alone is 144 pixels of the line's colour.
    assert!(line > 144 + 300, "no chart line drawn: {line} pixels");
    assert!(header > 10_000, "no header drawn: {header} pixels");
}

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
fn a_report_is_committed_before_it_is_answered_with_the_signed_manifest() {
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
    for (report, version, data_volume) in [
        (&ours, "0.4.0", ours["data_volume"].as_str().unwrap().to_string()),
        (&typed, "2.29.2", "123456789".to_string()),
        (&seed, "1.7.5", "7814503".to_string()),
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
                "SELECT r.version, r.data_bytes, r.report = '{}'::jsonb, d.reports \
                 FROM receiver.reports r JOIN receiver.databases d USING (db_uuid) WHERE db_uuid = '{uuid}'",
                report.to_string().replace('\'', "''")
            ),
        );
        assert_eq!(row, format!("{version}|{data_volume}|t|1"));
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
    let minisig = Command::new("base64").arg("-d").stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().and_then(|mut c| {
        c.stdin.take().unwrap().write_all(signature.as_bytes())?;
        c.wait_with_output()
    }).unwrap();
    std::fs::write(dir.join("answer.json.minisig"), &minisig.stdout).unwrap();
    let out = Command::new("minisign")
        .args(["-V", "-q", "-p"])
        .arg(dir.join("receiver.pub"))
        .arg("-m")
        .arg(dir.join("answer.json"))
        .output()
        .unwrap();
    assert!(out.status.success(), "minisign -V: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

/// Sends `head` (and then `body` from a thread, if any) on a raw connection and returns the
/// answer (status line, headers and body, up to the server's closing) and how long it took.
fn raw_exchange(url: &str, head: &str, body: impl FnOnce(&mut TcpStream) + Send + 'static) -> (String, Duration) {
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
        ("{\"db_uuid\": \"6ba7b810-9dad-11d1-80b4-00c04fd430c8\"}".to_string(), "db_uuid is not a version 4 UUID"),
        (format!("{{\"db_uuid\": \"{uuid}\", \"x\": \"a\\u0000b\"}}"), "NUL character"),
    ] {
        let (status, _, answer) = receiver.post(body.as_bytes());
        assert!((400..500).contains(&status), "{status} {answer}");
        assert_eq!(answer.trim_end(), answer.lines().next().unwrap_or(""), "one line: {answer}");
        assert!(answer.contains(reason), "{answer} (wanted {reason})");
    }
    // Over 512 KiB, announced and sent: refused, and the reason said.
    let big = report(&uuid, "0.4.0", 1).replace("\"os_name\"", &format!("\"pad\": \"{}\", \"os_name\"", "x".repeat(600 * 1024)));
    let head = format!("POST /v1/metrics HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", big.len());
    let (answer, _) = raw_exchange(&receiver.url, &head, move |w| {
        let _ = w.write_all(big.as_bytes());
    });
    assert!(answer.starts_with("HTTP/1.1 413") && answer.ends_with("the report is larger than 524288 bytes\n"), "{answer}");
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
    assert!(status.starts_with("HTTP/1.1 408"), "{status}");
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
    assert!(!status.contains("HTTP/1.1 2"), "{status}");
    assert!(took >= Duration::from_secs(9) && took < Duration::from_secs(30), "{took:?}");
    // The page and the API without the token, or with a wrong one.
    for (path, token) in [("/", None), ("/api/fleet", None), ("/api/fleet", Some("wrong-token-0123456789")), (&format!("/databases/{uuid}")[..], Some("x"))] {
        let (status, body) = receiver.get(path, token);
        assert_eq!(status, 401, "{path}: {body}");
        assert!(body.contains("the page token is missing or wrong"), "{body}");
    }
    let (status, body) = receiver.get("/login?token=wrong-token-0123456789", None);
    assert_eq!(status, 401);
    assert!(body.contains("That token is not the page token"), "{body}");
    // A right token, and a `next` that would leave the site: home instead.
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    for (next, location) in [("/api/fleet", "/api/fleet"), ("//evil.invalid/", "/"), ("https://evil.invalid/", "/")] {
        let r = agent.get(&format!("{}/login", receiver.url)).query("token", TOKEN).query("next", next).call().unwrap();
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
    let old = new_uuid();
    let kept = new_uuid();
    assert_eq!(receiver.post(report(&kept, "0.4.0", 1).as_bytes()).0, 200);
    // A day 31 days ago and one 29 days ago, as a receiver running then would have made them.
    store.psql(
        "fleet",
        &format!(
            "DO $$ DECLARE d date; BEGIN FOREACH d IN ARRAY ARRAY[current_date - 31, current_date - 29] LOOP \
               EXECUTE format('CREATE TABLE receiver.reports_p%s PARTITION OF receiver.reports FOR VALUES FROM (%L) TO (%L)', \
                 to_char(d, 'YYYYMMDD'), d::timestamptz, (d + 1)::timestamptz); END LOOP; END $$; \
             INSERT INTO receiver.reports (received_at, db_uuid, report) VALUES \
               (current_date - 31 + time '12:00', '{old}', '{{}}'), (current_date - 29 + time '12:00', '{kept}', '{{}}'); \
             INSERT INTO receiver.databases (db_uuid, first_seen, last_seen, report) VALUES \
               ('{old}', current_date - 31 + time '12:00', current_date - 31 + time '12:00', '{{}}');"
        ),
    );
    let partitions = "SELECT count(*) FROM pg_inherits WHERE inhparent = 'receiver.reports'::regclass";
    let before = count(&store, partitions);
    receiver.kill();
    receiver.restart();
    assert_eq!(count(&store, partitions), before - 1, "{}", receiver.log());
    assert!(receiver.log().contains("reports past retention dropped"), "{}", receiver.log());
    assert_eq!(count(&store, &format!("SELECT count(*) FROM receiver.reports WHERE db_uuid = '{old}'")), 0);
    assert_eq!(count(&store, &format!("SELECT count(*) FROM receiver.databases WHERE db_uuid = '{old}'")), 0);
    assert_eq!(count(&store, &format!("SELECT count(*) FROM receiver.reports WHERE db_uuid = '{kept}'")), 2);
    // Today's partition and two days ahead exist.
    assert_eq!(
        store.psql("fleet", "SELECT to_regclass('receiver.reports_p' || to_char(now() AT TIME ZONE 'UTC' + interval '2 days', 'YYYYMMDD')) IS NOT NULL"),
        "t"
    );
}

/// Posts reports of fresh databases from `threads` threads until `stop`; returns the
/// db_uuids answered 2xx, and counts of the other answers by status (0: no answer).
fn load(receiver_url: String, threads: usize, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(Vec<String>, Vec<u16>)> {
    std::thread::spawn(move || {
        let ok = Arc::new(Mutex::new(Vec::new()));
        let other = Arc::new(Mutex::new(Vec::new()));
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let (url, stop, ok, other) = (receiver_url.clone(), stop.clone(), ok.clone(), other.clone());
                std::thread::spawn(move || {
                    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(20)).build();
                    while !stop.load(Ordering::Relaxed) {
                        let uuid = new_uuid();
                        let result = agent.post(&format!("{url}/v1/metrics")).send_string(&report(&uuid, "0.4.0", 1));
                        match crate::common::receiver::answer(result) {
                            (200, _, _) => ok.lock().unwrap().push(uuid),
                            (status, _, _) => {
                                other.lock().unwrap().push(status);
                                std::thread::sleep(Duration::from_millis(20));
                            }
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        let ok = ok.lock().unwrap().clone();
        let other = other.lock().unwrap().clone();
        (ok, other)
    })
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
    let stop = Arc::new(AtomicBool::new(false));
    let loader = load(receiver.url.clone(), 8, stop.clone());
    assert!(wait_secs(30, || count(&store, "SELECT count(*) FROM receiver.reports") >= 200));
    receiver.kill();
    stop.store(true, Ordering::Relaxed);
    let (ok, other) = loader.join().unwrap();
    assert!(ok.len() >= 200, "{} answered", ok.len());
    assert!(other.contains(&0), "no request failed after the kill: {other:?}");
    assert_eq!(stored_of(&store, &ok), ok.len() as i64, "a report answered 200 is missing");
    // Started again, it goes on.
    receiver.restart();
    assert_eq!(receiver.post(report(&new_uuid(), "0.4.0", 1).as_bytes()).0, 200);
}

#[test]
fn a_store_restarted_under_load_gives_503s_then_the_receiver_recovers_by_itself() {
    let store = Cluster::plain("");
    let receiver = Receiver::start(&store, "fleet", &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let loader = load(receiver.url.clone(), 8, stop.clone());
    assert!(wait_secs(30, || count(&store, "SELECT count(*) FROM receiver.reports") >= 100));
    store.stop();
    std::thread::sleep(Duration::from_millis(500));
    store.start();
    // The same process answers 200 again, with no restart.
    let uuid = new_uuid();
    assert!(
        wait_secs(30, || receiver.post(report(&uuid, "0.4.0", 1).as_bytes()).0 == 200),
        "no recovery:\n{}",
        receiver.log()
    );
    stop.store(true, Ordering::Relaxed);
    let (ok, other) = loader.join().unwrap();
    assert!(other.contains(&503), "no 503 while the store was down: {other:?}");
    assert!(other.iter().all(|s| *s == 503), "other answers than 503: {other:?}");
    assert_eq!(stored_of(&store, &ok), ok.len() as i64, "a report answered 200 is missing");
    assert!(receiver.log().contains("store unavailable"), "{}", receiver.log());
}

/// Debian's Chromium, headless, with a profile of its own and nothing reaching the network.
fn chromium(profile: &std::path::Path, args: &[&str], url: &str) -> std::process::Output {
    let out = Command::new("chromium")
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
        wait_secs(60, || count(&cluster, &format!("SELECT count(*) FROM receiver.databases WHERE db_uuid = '{uuid}'")) == 1),
        "no report from the worker:\n{}\n{}",
        receiver.log(),
        cluster.server_log()
    );
    assert!(
        cluster.wait_for_log(Duration::from_secs(30), |log| log.contains("WARNING") && log.contains("TST-2026-0001")),
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
    assert_eq!(detail["history"].as_array().unwrap().len(), 5, "{detail}");

    // The page, in Chromium, signed in by the token link; its DOM as the browser built it.
    let profile = receiver.dir.join("chromium");
    let login = format!("{}/login?token={TOKEN}", receiver.url);
    let dom = String::from_utf8(chromium(&profile, &["--dump-dom"], &login).stdout).unwrap();
    assert!(dom.contains(&format!("<div class=\"n\" id=\"last-day\">1</div>")), "{dom}");
    let attention = dom.split("id=\"attention\"").nth(1).unwrap().split("</section>").next().unwrap();
    assert!(attention.contains(&format!("href=\"/databases/{uuid}\"")) && attention.contains("advisory (high)"), "{attention}");
    let largest = dom.split("id=\"largest\"").nth(1).unwrap().split("</section>").next().unwrap();
    assert!(largest.contains("<svg") && largest.contains("<polyline"), "{largest}");
    // The drill-down: its history of five reports, its latest report.
    let drill = format!("{login}&next=/databases/{uuid}");
    let dom = String::from_utf8(chromium(&profile, &["--dump-dom"], &drill).stdout).unwrap();
    assert_eq!(dom.matches("class=\"history-row\"").count(), 5, "{dom}");
    assert!(dom.contains(&format!("&quot;db_uuid&quot;: &quot;{uuid}&quot;")) || dom.contains(&format!("\"db_uuid\": \"{uuid}\"")), "{dom}");
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
    assert!(has([0xd6, 0x27, 0x28]) > 50, "no high-severity badge drawn");
    assert!(has([0x1f, 0x77, 0xb4]) > 50, "no chart line drawn");
    assert!(has([0x1d, 0x23, 0x30]) > 10_000, "no header drawn");
}

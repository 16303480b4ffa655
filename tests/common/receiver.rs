//! The receiver (receiver/, its binary built by tests/run) as the tests run it: a real
//! process on 127.0.0.1 storing into a real cluster's database, driven over HTTP.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{wait_until, Cluster, REPO};

pub const TOKEN: &str = "test-page-token-0123456789";

/// A manifest whose current version is 0.4.1 and whose one advisory (high) affects every
/// version before it: the installed 0.4.0 is out of date and affected.
pub const MANIFEST: &str = r#"{"current_timescaledb_version": "0.4.1", "advisories": [
  {"id": "TST-2026-0001", "summary": "A test advisory for the fleet", "database_specific": {"severity": "HIGH"},
   "affected": [{"ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "0.4.1"}]}]}],
   "references": [{"url": "https://advisories.invalid/TST-2026-0001"}]}]}"#;

/// A running receiver; killed on drop.
pub struct Receiver {
    child: Option<Child>,
    pub dir: PathBuf,
    pub url: String,
    /// The public key its answers are signed with (the line for `trusted_keys`).
    pub public_key: String,
    env: Vec<(String, String)>,
    log: Arc<Mutex<String>>,
}

fn binary() -> String {
    std::env::var("RECEIVER_BIN")
        .unwrap_or_else(|_| format!("{REPO}/target/release/timescaledb-telemetry-receiver"))
}

impl Receiver {
    /// A receiver storing into database `db` of `cluster` (created here), answering with
    /// `MANIFEST` signed by a key of its own, with `extra` environment.
    pub fn start(cluster: &Cluster, db: &str, extra: &[(&str, &str)]) -> Receiver {
        cluster.psql("postgres", &format!("CREATE DATABASE \"{db}\""));
        let dir = cluster.dir.join(format!("receiver-{db}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("manifest.json"), MANIFEST).unwrap();
        let out = Command::new(binary())
            .arg("keygen")
            .arg(&dir)
            .output()
            .expect("receiver binary (tests/run builds it)");
        assert!(out.status.success(), "keygen: {}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let public_key = stdout
            .split('\'')
            .nth(1)
            .unwrap_or_else(|| panic!("keygen printed no key: {stdout}"))
            .to_string();
        let mut env: Vec<(String, String)> = vec![
            (
                "RECEIVER_DATABASE_URL".into(),
                format!("host={} port={} user=postgres dbname={db}", cluster.dir.display(), cluster.port),
            ),
            ("RECEIVER_MANIFEST".into(), dir.join("manifest.json").display().to_string()),
            ("RECEIVER_SECRET_KEY".into(), dir.join("receiver.key").display().to_string()),
            ("RECEIVER_PAGE_TOKEN".into(), TOKEN.into()),
            ("RECEIVER_LISTEN".into(), "127.0.0.1:0".into()),
        ];
        for (k, v) in extra {
            env.retain(|(name, _)| name != k);
            env.push((k.to_string(), v.to_string()));
        }
        let mut r = Receiver {
            child: None,
            dir,
            url: String::new(),
            public_key,
            env,
            log: Arc::new(Mutex::new(String::new())),
        };
        r.restart();
        r
    }

    /// Starts the process (again, after `kill`, on a port of its own: the old one may have
    /// been taken meanwhile) and waits until it listens.
    pub fn restart(&mut self) {
        let mut child = Command::new(binary())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("receiver binary (tests/run builds it)");
        let stderr = child.stderr.take().unwrap();
        let log = self.log.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("listening on http://") {
                    let url = line[at + "listening on ".len()..]
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_string();
                    let _ = tx.send(url);
                }
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        self.child = Some(child);
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => self.url = url,
            Err(_) => panic!("the receiver did not listen within 60 s:\n{}", self.log()),
        }
    }

    /// SIGKILL, and waits until the process is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM; then the process's exit status, waited for up to `secs` seconds (`None`: it
    /// had not exited by then, and was killed).
    pub fn terminate(&mut self, secs: u64) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let out = Command::new("kill").arg("-TERM").arg(child.id().to_string()).output().unwrap();
        assert!(out.status.success());
        let mut status = None;
        wait_secs(secs, || {
            status = child.try_wait().unwrap();
            status.is_some()
        });
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        status
    }

    /// Whether the process started last is still running.
    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// Everything the receiver wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// POSTs `body` to `/v1/metrics`: (status, the signature header, the answer).
    pub fn post(&self, body: &[u8]) -> (u16, Option<String>, String) {
        let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
        let result = agent
            .post(&format!("{}/v1/metrics", self.url))
            .set("Content-Type", "application/json")
            .send_bytes(body);
        answer(result)
    }

    /// GETs `path` with the page token as a bearer token (or `token`).
    pub fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).redirects(0).build();
        let mut request = agent.get(&format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.set("Authorization", &format!("Bearer {token}"));
        }
        let (status, _, body) = answer(request.call());
        (status, body)
    }

    /// `/api/…` as JSON, with the token.
    pub fn api(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.get(path, Some(TOKEN));
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }
}

/// (status, signature header, body) of a ureq result, whatever the status; 0 when there was
/// no answer at all.
pub fn answer(result: Result<ureq::Response, ureq::Error>) -> (u16, Option<String>, String) {
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(ureq::Error::Transport(t)) => return (0, None, t.to_string()),
    };
    let status = response.status();
    let signature = response.header("Telemetry-Signature").map(str::to_string);
    (status, signature, response.into_string().unwrap_or_default())
}

/// A report as the extension sends it, for database `db_uuid` (a fresh v4 UUID each call
/// of `new_uuid`).
pub fn report(db_uuid: &str, version: &str, data_volume: u64) -> String {
    serde_json::json!({
        "db_uuid": db_uuid,
        "exported_db_uuid": new_uuid(),
        "installed_time": "2026-11-24T23:58:03.147272Z",
        "install_method": "source",
        "os_name": "Linux",
        "postgresql_version": "15.20",
        "timescaledb_version": version,
        "data_volume": data_volume.to_string(),
        "relations": {"tables": {"num_relations": "12", "heap_size": "8192"}},
        "related_extensions": {"timescaledb": "false", "PostGIS": "false"},
        "functions_used": {"pg_catalog.count()": "12", "pg_catalog.now()": "3"},
        "db_metadata": {},
    })
    .to_string()
}

/// A random version 4 UUID, from the kernel.
pub fn new_uuid() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/uuid").unwrap().trim().to_string()
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until `cond` holds, up to `secs` seconds.
pub fn wait_secs(secs: u64, cond: impl FnMut() -> bool) -> bool {
    wait_until(Duration::from_secs(secs), cond)
}

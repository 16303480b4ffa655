//! The launcher: one background worker, connected to no database, that keeps every
//! database's schedule, starts one collector at a time, sends the reports on helper threads,
//! checks the announced version and writes the server-log lines.
//!
//! Its loop is pg_cron's: handle signals and configuration reloads, do what is due, then
//! sleep on the latch until the next due time or a signal. The helper threads never call
//! PostgreSQL; they only hand their result back over a channel. They run with every signal
//! blocked, so SIGTERM always reaches this thread, and `pg_ctl stop -m fast` never waits for
//! a request: the process exits and takes its threads with it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pgrx::bgworkers::{
    BackgroundWorker, BackgroundWorkerBuilder, BackgroundWorkerStatus, BgWorkerStartTime,
    DynamicBackgroundWorker, SignalWakeFlags,
};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::PgMemoryContexts;

use super::databases;
use super::COLLECTOR_TYPE;
use crate::handover::{self, Collected};
use crate::http::{self, Answer, SendError};
use crate::log_budget::LogBudget;
use crate::schedule::{self, Jitter};
use crate::settings::Settings;
use crate::state::{DbStatus, State};
use crate::threads::with_signals_blocked;
use crate::version::Version;

/// The data directory: every server process's working directory.
const DATA_DIR: &str = ".";
/// A collector that has not finished after this long is stopped and counted as a failure.
const COLLECTOR_MAX_SECS: f64 = 60.0;
/// No free worker slot: try again after this long.
const REGISTER_RETRY_SECS: f64 = 5.0;
/// How often the loop looks at its helper threads while a request is in flight.
const POLL_WHILE_SENDING: Duration = Duration::from_millis(50);
/// This library's version, compared with the announced one.
const INSTALLED_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Set by SIGUSR2, which CREATE EXTENSION sends: look for databases that got the extension.
static PROBE_REQUESTED: AtomicBool = AtomicBool::new(false);

unsafe extern "C-unwind" fn on_sigusr2(_signal: std::ffi::c_int) {
    // SAFETY: only async-signal-safe work: an atomic store and SetLatch, errno preserved.
    unsafe {
        let saved = *libc::__errno_location();
        PROBE_REQUESTED.store(true, Ordering::SeqCst);
        pg_sys::SetLatch(pg_sys::MyLatch);
        *libc::__errno_location() = saved;
    }
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

fn shutdown_requested() -> bool {
    // SAFETY: a sig_atomic_t flag set by the SIGTERM handler; reading it is always sound.
    unsafe { std::ptr::read_volatile(&raw const pg_sys::ShutdownRequestPending) != 0 }
}

/// What the launcher knows of one connectable database.
struct Db {
    name: String,
    /// Unknown until a collector has looked.
    has_extension: Option<bool>,
    /// When a collector should next visit (Unix seconds; infinity: only when woken).
    due: f64,
}

struct Collecting {
    oid: u32,
    worker: DynamicBackgroundWorker,
    started: f64,
}

struct Sending {
    answer: Receiver<Result<Answer, SendError>>,
    deadline: f64,
}

struct Launcher {
    settings: Settings,
    state: State,
    dbs: BTreeMap<u32, Db>,
    collecting: Option<Collecting>,
    sending: BTreeMap<u32, Sending>,
    jitter: Jitter,
    budget: LogBudget,
    /// Holds the collector's worker handle; reset after each collector.
    handles: PgMemoryContexts,
    register_again_at: f64,
    /// When CREATE EXTENSION last woke us: a collector that started before then may have
    /// looked too early to see the extension.
    probe_requested_at: f64,
}

impl Launcher {
    fn new() -> Launcher {
        let t = now();
        Launcher {
            settings: Settings::current(),
            state: State::load(Path::new(DATA_DIR)),
            dbs: BTreeMap::new(),
            collecting: None,
            sending: BTreeMap::new(),
            // SAFETY: reading this process's pid.
            jitter: Jitter::new(t.to_bits() ^ unsafe { pg_sys::MyProcPid } as u64),
            budget: LogBudget::default(),
            handles: PgMemoryContexts::new("timescaledb_telemetry collector handles"),
            register_again_at: 0.0,
            probe_requested_at: f64::NEG_INFINITY,
        }
    }

    fn interval(&self) -> f64 {
        self.settings.interval_secs as f64
    }

    fn save_state(&self) {
        if let Err(e) = self.state.save(Path::new(DATA_DIR)) {
            log!("timescaledb_telemetry: could not save the worker state: {e}");
        }
    }

    /// Re-reads the list of databases: new ones are visited at once (or, if they reported
    /// before a restart, when their interval is over); dropped ones are forgotten.
    fn refresh_databases(&mut self, now: f64) {
        let present = databases::connectable();
        self.dbs.retain(|oid, _| present.iter().any(|d| d.oid == *oid));
        let before = self.state.databases.len();
        self.state.databases.retain(|oid, _| present.iter().any(|d| d.oid == *oid));
        if self.state.databases.len() != before {
            self.save_state();
        }
        let interval = self.interval();
        for d in present {
            let last_success = self.state.databases.get(&d.oid).and_then(|s| s.last_success);
            let db = self.dbs.entry(d.oid).or_insert_with(|| Db {
                name: d.name.clone(),
                has_extension: None,
                due: schedule::first_attempt(now, interval, last_success),
            });
            db.name = d.name;
        }
    }

    fn status(&mut self, oid: u32) -> &mut DbStatus {
        self.state.databases.entry(oid).or_default()
    }

    fn name(&self, oid: u32) -> String {
        self.dbs.get(&oid).map(|d| d.name.clone()).unwrap_or_else(|| oid.to_string())
    }

    fn set_due(&mut self, oid: u32, due: f64) {
        if let Some(db) = self.dbs.get_mut(&oid) {
            db.due = due;
        }
        self.status(oid).next_attempt = due.is_finite().then_some(due);
    }

    /// Starts a collector for the most overdue database, if none is running.
    fn start_collector(&mut self, now: f64) {
        if self.collecting.is_some() || now < self.register_again_at {
            return;
        }
        let overdue = self
            .dbs
            .iter()
            .filter(|(oid, db)| db.due <= now && !self.sending.contains_key(oid))
            .min_by(|a, b| a.1.due.total_cmp(&b.1.due))
            .map(|(oid, _)| *oid);
        let Some(oid) = overdue else { return };
        self.refresh_databases(now);
        if !self.dbs.contains_key(&oid) {
            return;
        }
        let builder = BackgroundWorkerBuilder::new(COLLECTOR_TYPE)
            .set_type(COLLECTOR_TYPE)
            .set_library("timescaledb_telemetry")
            .set_function("timescaledb_telemetry_collector_main")
            .enable_spi_access()
            .set_start_time(BgWorkerStartTime::RecoveryFinished)
            .set_restart_time(None)
            .set_argument(Some(pg_sys::Datum::from(oid)))
            // SAFETY: reading this process's pid, so that the postmaster tells us when the
            // collector starts and stops.
            .set_notify_pid(unsafe { pg_sys::MyProcPid });
        // SAFETY: the handle is allocated in our own context, reset once the collector ends.
        match unsafe { self.handles.switch_to(|_| builder.load_dynamic()) } {
            Ok(worker) => self.collecting = Some(Collecting { oid, worker, started: now }),
            Err(_) => {
                debug1!("timescaledb_telemetry: no free background worker slot; retrying in {REGISTER_RETRY_SECS} s");
                self.register_again_at = now + REGISTER_RETRY_SECS;
            }
        }
    }

    /// Takes the findings of a collector that has stopped.
    fn poll_collector(&mut self, now: f64) {
        let Some(c) = &self.collecting else { return };
        match c.worker.pid() {
            // Still running, and not for too long: wait for the postmaster's notice.
            Ok(_) | Err(BackgroundWorkerStatus::NotYetStarted) if now - c.started < COLLECTOR_MAX_SECS => {}
            Ok(_) | Err(BackgroundWorkerStatus::NotYetStarted) => {
                let c = self.collecting.take().expect("checked above");
                let _ = c.worker.terminate().wait_for_shutdown();
                self.finish_collector(c.oid, c.started, None, now);
            }
            Err(_) => {
                let c = self.collecting.take().expect("checked above");
                let collected = handover::take(Path::new(DATA_DIR), c.oid);
                self.finish_collector(c.oid, c.started, collected, now);
            }
        }
    }

    fn finish_collector(&mut self, oid: u32, started: f64, collected: Option<Collected>, now: f64) {
        // SAFETY: the collector has stopped; nothing refers to its handle any more.
        unsafe { self.handles.reset() };
        self.refresh_databases(now);
        if !self.dbs.contains_key(&oid) {
            return; // dropped (or made a template) while we looked
        }
        let interval = self.interval();
        match collected {
            Some(Collected::Absent) => {
                let db = self.dbs.get_mut(&oid).expect("present");
                db.has_extension = Some(false);
                // Woken by a CREATE EXTENSION that may have committed after this collector
                // looked: look again at once. Otherwise wait for the next wake-up.
                db.due = if self.probe_requested_at >= started { now } else { f64::INFINITY };
                if self.state.databases.remove(&oid).is_some() {
                    self.save_state();
                }
            }
            Some(Collected::Off) => {
                self.dbs.get_mut(&oid).expect("present").has_extension = Some(true);
                let endpoint = self.settings.endpoint.clone();
                let status = self.status(oid);
                status.level = Some("off".into());
                status.endpoint = Some(endpoint);
                let due = schedule::after_success(now, interval, self.jitter.next());
                self.set_due(oid, due);
                self.save_state();
            }
            Some(Collected::Report { level, report }) => {
                self.dbs.get_mut(&oid).expect("present").has_extension = Some(true);
                self.send(oid, level, report, now);
            }
            Some(Collected::Failed { error }) => self.record_failure(oid, None, error, now),
            None => self.record_failure(
                oid,
                None,
                "the report could not be collected (see the server log)".to_string(),
                now,
            ),
        }
    }

    /// Sends a report on a helper thread; the answer is picked up by `poll_sends`.
    fn send(&mut self, oid: u32, level: String, report: serde_json::Value, now: f64) {
        let endpoint = self.settings.endpoint.clone();
        let timeout = Duration::from_secs(self.settings.timeout_secs);
        {
            let status = self.status(oid);
            status.level = Some(level);
            status.endpoint = Some(endpoint.clone());
            status.last_attempt = Some(now);
        }
        self.set_due(oid, f64::INFINITY);
        let body = serde_json::to_vec(&report).unwrap_or_default();
        let (tx, rx) = mpsc::channel();
        let user_agent = format!("timescaledb_telemetry/{INSTALLED_VERSION}");
        let spawned = with_signals_blocked(|| {
            std::thread::Builder::new().name("telemetry-http".into()).spawn(move || {
                let _ = tx.send(http::post(&endpoint, body, timeout, &user_agent));
            })
        });
        match spawned {
            Ok(_) => {
                self.sending.insert(oid, Sending { answer: rx, deadline: now + timeout.as_secs_f64() });
            }
            Err(e) => self.record_failure(oid, None, format!("could not start the request thread: {e}"), now),
        }
    }

    /// Picks up finished (or overdue) requests.
    fn poll_sends(&mut self, now: f64) {
        let mut done = Vec::new();
        for (oid, s) in &self.sending {
            match s.answer.try_recv() {
                Ok(result) => done.push((*oid, result)),
                Err(TryRecvError::Empty) if now >= s.deadline => {
                    done.push((*oid, Err(SendError::TimedOut(self.settings.timeout_secs))))
                }
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => {
                    done.push((*oid, Err(SendError::Other("the request thread stopped".into()))))
                }
            }
        }
        for (oid, result) in done {
            self.sending.remove(&oid);
            if !self.dbs.contains_key(&oid) {
                continue;
            }
            match result {
                Ok(answer) => self.record_success(oid, answer, now),
                Err(e) => self.record_failure(oid, e.status(), e.to_string(), now),
            }
        }
    }

    fn record_success(&mut self, oid: u32, answer: Answer, now: f64) {
        let interval = self.interval();
        let due = schedule::after_success(now, interval, self.jitter.next());
        let status = self.status(oid);
        let failures = status.failures;
        status.last_success = Some(now);
        status.last_status = Some(answer.status);
        status.last_error = None;
        status.latest_version = Some(answer.latest.as_str().to_string());
        status.failures = 0;
        self.set_due(oid, due);
        self.save_state();
        if failures > 0 && self.budget.recovery_line() {
            log!(
                "telemetry report for database \"{}\" succeeded after {failures} failed attempt{}",
                self.name(oid),
                if failures == 1 { "" } else { "s" }
            );
        }
        if self.budget.version_line(answer.latest.as_str(), now, interval) {
            log_version(&answer.latest);
        }
    }

    fn record_failure(&mut self, oid: u32, http_status: Option<u16>, reason: String, now: f64) {
        let interval = self.interval();
        let reason = http::one_line(&reason);
        let status = self.status(oid);
        status.failures += 1;
        status.last_status = http_status;
        status.last_error = Some(reason.clone());
        let failures = status.failures;
        let due = schedule::after_failure(now, interval, failures, self.jitter.next());
        self.set_due(oid, due);
        self.save_state();
        let line = format!("telemetry report for database \"{}\" failed: {reason}", self.name(oid));
        if self.budget.failure_line(&reason, now) {
            log!("{line}");
        } else {
            debug1!("{line}");
        }
    }

    /// After a reload: a shorter interval takes effect now, not after the old one.
    fn apply_new_settings(&mut self, now: f64) {
        let old_interval = self.interval();
        self.settings = Settings::current();
        let interval = self.interval();
        if interval < old_interval {
            let cap = now + interval;
            let capped: Vec<u32> = self
                .dbs
                .iter()
                .filter(|(oid, db)| db.due.is_finite() && db.due > cap && !self.sending.contains_key(oid))
                .map(|(oid, _)| *oid)
                .collect();
            for oid in capped {
                let due = schedule::after_success(now, interval, self.jitter.next());
                self.set_due(oid, due);
            }
            self.save_state();
        }
    }

    /// How long to sleep: until the next due visit, briefly while requests are in flight,
    /// for ever (until a signal) when nothing is scheduled.
    fn sleep_time(&self, now: f64) -> Option<Duration> {
        if !self.sending.is_empty() {
            return Some(POLL_WHILE_SENDING);
        }
        let mut next = self
            .dbs
            .iter()
            .filter(|(oid, _)| self.collecting.as_ref().is_none_or(|c| c.oid != **oid))
            .map(|(_, db)| db.due)
            .fold(f64::INFINITY, f64::min);
        if let Some(c) = &self.collecting {
            // The postmaster wakes us when the collector stops; this bounds a lost wake-up.
            next = next.min(c.started + 1.0).max(now + 0.1);
        }
        if now < self.register_again_at {
            next = next.max(self.register_again_at);
        }
        next.is_finite().then(|| Duration::from_secs_f64((next - now).clamp(0.001, 86400.0 * 365.0)))
    }

    fn run(&mut self) {
        self.refresh_databases(now());
        loop {
            if shutdown_requested() {
                return;
            }
            if BackgroundWorker::sighup_received() {
                // SAFETY: the documented way for a background worker to reload its configuration.
                unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
                self.apply_new_settings(now());
            }
            if PROBE_REQUESTED.swap(false, Ordering::SeqCst) {
                let t = now();
                self.probe_requested_at = t;
                self.refresh_databases(t);
                for db in self.dbs.values_mut().filter(|db| db.has_extension != Some(true)) {
                    db.due = t;
                }
            }
            self.poll_collector(now());
            self.poll_sends(now());
            self.start_collector(now());
            let sleep = self.sleep_time(now());
            if !BackgroundWorker::wait_latch(sleep) && shutdown_requested() {
                return;
            }
        }
    }
}

/// The version lines of SPEC §5: a WARNING when a newer version exists, else a LOG line.
fn log_version(latest: &Version) {
    let installed = Version::parse(INSTALLED_VERSION).expect("our own version is valid");
    if *latest > installed {
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_WARNING,
            "the \"timescaledb_telemetry\" extension is out of date",
            "timescaledb_telemetry launcher",
        )
        .set_detail(format!(
            "The most up-to-date version is {}, the installed version is {INSTALLED_VERSION}.",
            latest.as_str()
        ))
        .set_hint(
            "Install the new version of the timescaledb_telemetry package, restart the server, \
             then run ALTER EXTENSION timescaledb_telemetry UPDATE in each database that has it.",
        )
        .report(PgLogLevel::WARNING);
    } else {
        log!("the \"timescaledb_telemetry\" extension is up to date (latest version {})", latest.as_str());
    }
}

/// Entry point of the launcher.
#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn timescaledb_telemetry_launcher_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    // SAFETY: installing a handler that only sets a flag and the latch.
    unsafe { pg_sys::pqsignal(libc::SIGUSR2, Some(on_sigusr2)) };
    // No database: the launcher only reads the shared catalog pg_database.
    BackgroundWorker::connect_worker_to_spi(None, None);
    Launcher::new().run();
}

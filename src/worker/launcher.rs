//! The launcher: one background worker, connected to no database, that keeps every
//! database's schedule, starts one collector at a time, sends the reports on helper threads,
//! checks the announced version and writes the server-log lines.
//!
//! It is the imperative shell around [`Fleet`], which makes every decision: this file only
//! reads what happened (signals, the database list, a collector's findings, answers),
//! tells the fleet, and performs the actions it returns.
//!
//! Its loop is pg_cron's: handle signals and configuration reloads, do what is due, then
//! sleep on the latch until the next due time or a signal. The helper threads never call
//! PostgreSQL; they only hand their result back over a channel. They run with every signal
//! blocked, so SIGTERM always reaches this thread, and `pg_ctl stop -m fast` never waits for
//! a request: the process exits and takes its threads with it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::PgMemoryContexts;

use super::databases;
use super::dynamic::Dynamic;
use super::COLLECTOR_TYPE;
use crate::advisory::{self, Advisory};
use crate::fleet::{Action, Config, Database, Fleet, Level};
use crate::handover;
use crate::http::{self, Answer, Check, SendError};
use crate::settings::Settings;
use crate::state::{sent_path, write_atomically, State, SENT_DIR};
use crate::threads::with_signals_blocked;
use crate::version::Version;

/// The data directory: every server process's working directory.
const DATA_DIR: &str = ".";
/// This library's version, compared with the announced one.
const INSTALLED_VERSION: &str = env!("CARGO_PKG_VERSION");

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// The settings the fleet's rules use, read now (after the last reload).
fn config() -> Config {
    let s = Settings::current();
    Config { interval: s.interval_secs as f64, endpoint: s.endpoint, timeout_secs: s.timeout_secs }
}

/// How answers are checked, with the keys trusted now.
fn check() -> Check {
    let installed = Version::parse(INSTALLED_VERSION).expect("our own version is valid");
    Check { installed, keys: Settings::current().trusted_keys, not_before: None }
}

/// The databases a collector may visit, read afresh from pg_database.
fn databases() -> Vec<Database> {
    databases::connectable().into_iter().map(|d| Database { oid: d.oid, name: d.name }).collect()
}

/// The running collector.
struct Collecting {
    oid: u32,
    visit: u32,
    worker: Dynamic,
}

struct Launcher {
    fleet: Fleet,
    collecting: Option<Collecting>,
    /// Answers of the requests in flight, by database.
    answers: BTreeMap<u32, Receiver<Result<Answer, SendError>>>,
    /// Holds the collector's worker handle; reset after each collector.
    handles: PgMemoryContexts,
    /// How answers are checked (the keys are read at start and at each reload).
    check: Check,
    /// The fleet's state changed since it was last saved.
    unsaved: bool,
    /// When the state was last saved.
    saved_at: f64,
    /// The list of databases read in this turn of the loop (by a collector's end), which the
    /// next visit started in the same turn uses instead of reading pg_database again.
    present: Option<Vec<Database>>,
}

/// The state is saved at once when it was last saved this long ago, else this long after
/// (or before the next log line, or on exit): when a thousand databases report at start,
/// saving every status of all of them after each answer was work that grows as the square
/// of their number.
const SAVE_EVERY_SECS: f64 = 0.5;

impl Launcher {
    fn new() -> Launcher {
        // SAFETY: reading this process's pid.
        let seed = now().to_bits() ^ unsafe { pg_sys::MyProcPid } as u64;
        let state = State::load(Path::new(DATA_DIR)).unwrap_or_else(|why| {
            // Once per launcher start; the next save replaces the file.
            warning!(
                "timescaledb_telemetry: the worker state could not be read, starting afresh: {}",
                http::one_line(&why)
            );
            State::default()
        });
        forget_sent_unless_known(&state);
        Launcher {
            fleet: Fleet::new(config(), state, seed),
            collecting: None,
            answers: BTreeMap::new(),
            handles: PgMemoryContexts::new("timescaledb_telemetry collector handles"),
            check: check(),
            unsaved: false,
            saved_at: f64::NEG_INFINITY,
            present: None,
        }
    }

    /// Performs what the fleet decided.
    fn perform(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Collect { oid, visit } => self.start_collector(oid, visit),
                Action::StopCollector => {
                    if let Some(c) = &self.collecting {
                        c.worker.terminate();
                    }
                }
                Action::Send { oid, body, db_uuid, endpoint, timeout_secs } => {
                    self.send(oid, body, db_uuid, endpoint, timeout_secs)
                }
                Action::KeepSent { oid } => keep_sent(oid),
                Action::ForgetSent { oid } => {
                    let _ = std::fs::remove_file(sent_path(oid, "json"));
                    let _ = std::fs::remove_file(sent_path(oid, "sending"));
                }
                // What the log says, the status shows by then: saved first.
                Action::Advisory { advisory } => {
                    self.save_state(true);
                    log_advisory(&advisory)
                }
                Action::Log { level: Level::Log, line } => {
                    self.save_state(true);
                    log!("{line}")
                }
                Action::Log { level: Level::Debug1, line } => debug1!("{line}"),
                Action::VersionLine { latest } => {
                    self.save_state(true);
                    log_version(&latest)
                }
                Action::Acknowledge { oid, usage } => {
                    crate::functions::acknowledge(oid, &usage);
                    self.reclaim_usage();
                }
                Action::SaveState => {
                    self.unsaved = true;
                    self.save_state(false);
                }
            }
        }
    }

    /// Saves the fleet's state if it changed and `now` is set, or it was last saved at
    /// least [`SAVE_EVERY_SECS`] ago.
    fn save_state(&mut self, now_or_never: bool) {
        let t = now();
        if !self.unsaved || (!now_or_never && t - self.saved_at < SAVE_EVERY_SECS) {
            return;
        }
        self.unsaved = false;
        self.saved_at = t;
        if let Err(e) = self.fleet.state().save(Path::new(DATA_DIR)) {
            let more = self.fleet.state_not_saved(&e.to_string(), t);
            self.perform(more);
        }
    }

    fn start_collector(&mut self, oid: u32, visit: u32) {
        handover::discard(Path::new(DATA_DIR), oid);
        let builder = BackgroundWorkerBuilder::new(COLLECTOR_TYPE)
            .set_type(COLLECTOR_TYPE)
            .set_library("timescaledb_telemetry")
            .set_function("timescaledb_telemetry_collector_main")
            .enable_spi_access()
            .set_start_time(BgWorkerStartTime::RecoveryFinished)
            .set_restart_time(None)
            .set_argument(Some(pg_sys::Datum::from(handover::worker_argument(oid, visit))))
            // SAFETY: reading this process's pid, so that the postmaster tells us when the
            // collector starts and stops.
            .set_notify_pid(unsafe { pg_sys::MyProcPid });
        // SAFETY: the handle is allocated in our own context, reset once the collector ends.
        match unsafe { self.handles.switch_to(|_| Dynamic::start(&builder)) } {
            Some(worker) => {
                // The one trace of a visit (a collector's own work is not counted in the
                // database's statistics, see session.rs).
                debug1!("timescaledb_telemetry: visiting database {oid} (visit {visit})");
                self.collecting = Some(Collecting { oid, visit, worker })
            }
            None => {
                debug1!(
                    "timescaledb_telemetry: no free background worker slot; retrying in {} s",
                    crate::fleet::REGISTER_RETRY_SECS
                );
                self.fleet.no_slot(now());
            }
        }
    }

    /// Looks at the running collector: still running (the fleet may stop it), or stopped
    /// (its findings, if this visit left any, go to the fleet).
    fn poll_collector(&mut self) {
        let Some(c) = &self.collecting else { return };
        if c.worker.running() {
            let actions = self.fleet.collector_running(now());
            self.perform(actions);
            return;
        }
        let c = self.collecting.take().expect("checked above");
        // SAFETY: the collector has stopped; nothing refers to its handle any more.
        unsafe { self.handles.reset() };
        let findings = handover::take(Path::new(DATA_DIR), c.oid, c.visit);
        let present = self.present.insert(databases());
        let actions = self.fleet.collector_stopped(findings, present, now());
        self.perform(actions);
        self.reclaim_usage();
    }

    /// Gives back the function-usage slots of databases that are gone or have no extension
    /// (and, once the table fills up, of counts all accepted): after each visit and each
    /// accepted report, so a database's pairs are back within one launcher cycle.
    fn reclaim_usage(&mut self) {
        let give_back = self.fleet.usage_to_give_back();
        crate::functions::reclaim(
            |db| give_back.gone.binary_search(&db).is_ok(),
            |db| give_back.unreported.binary_search(&db).is_ok(),
        );
    }

    /// Sends a report on a helper thread; the answer is picked up by `poll_sends`.
    fn send(&mut self, oid: u32, body: Vec<u8>, db_uuid: String, endpoint: String, timeout_secs: u64) {
        let (tx, rx) = mpsc::channel();
        let user_agent = format!("timescaledb_telemetry/{INSTALLED_VERSION}");
        let timeout = Duration::from_secs(timeout_secs);
        let check = Check { not_before: self.fleet.state().signed_at, ..self.check.clone() };
        let spawned = with_signals_blocked(|| {
            std::thread::Builder::new().name("telemetry-http".into()).spawn(move || {
                // Kept aside until the endpoint has it (then it is the last sent, `keep_sent`):
                // on disk, not in memory, however many requests are in flight. Written here,
                // not on the launcher's loop, which its two flushes to disk held up between
                // one collector and the next; always before the answer that `keep_sent` waits for.
                let _ = std::fs::create_dir_all(SENT_DIR)
                    .and_then(|_| write_atomically(&sent_path(oid, "sending"), &body));
                let _ = tx.send(http::post(&endpoint, body, &db_uuid, timeout, &user_agent, &check));
            })
        });
        match spawned {
            Ok(_) => {
                self.answers.insert(oid, rx);
            }
            Err(e) => {
                let failed = Err(SendError::Other(format!("could not start the request thread: {e}")));
                let actions = self.fleet.answered(oid, failed, now());
                self.perform(actions);
            }
        }
    }

    /// Picks up finished (or overdue) requests.
    fn poll_sends(&mut self) {
        let t = now();
        let mut done = Vec::new();
        for (oid, answer) in &self.answers {
            match answer.try_recv() {
                Ok(result) => done.push((*oid, result)),
                Err(TryRecvError::Empty) if self.fleet.send_overdue(*oid, t) => {
                    done.push((*oid, Err(SendError::TimedOut(self.fleet.timeout_secs()))))
                }
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => {
                    done.push((*oid, Err(SendError::Other("the request thread stopped".into()))))
                }
            }
        }
        for (oid, result) in done {
            self.answers.remove(&oid);
            let actions = self.fleet.answered(oid, result, t);
            self.perform(actions);
        }
    }

    fn run(&mut self) {
        let actions = self.fleet.databases(&databases(), now());
        self.perform(actions);
        loop {
            if BackgroundWorker::sigterm_received() {
                self.save_state(true);
                return;
            }
            if BackgroundWorker::sighup_received() {
                // SAFETY: the documented way for a background worker to reload its configuration.
                unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
                self.check = check();
                let actions = self.fleet.reloaded(config(), now());
                self.perform(actions);
            }
            if let Some(wake) = super::take_wake_up() {
                let actions = self.fleet.woken(&wake, &databases(), now());
                self.perform(actions);
            }
            self.poll_collector();
            self.poll_sends();
            if let Some(oid) = self.fleet.visit_due(now()) {
                let present = self.present.take().unwrap_or_else(databases);
                let actions = self.fleet.start_visit(oid, &present, now());
                self.perform(actions);
            }
            self.present = None;
            self.save_state(false);
            let mut sleep = self.fleet.sleep_secs(now());
            if self.unsaved {
                let save_in = (self.saved_at + SAVE_EVERY_SECS - now()).max(0.001);
                sleep = Some(sleep.map_or(save_in, |s| s.min(save_in)));
            }
            // False on SIGTERM and when the postmaster has died: either way, leave now (a
            // launcher outliving its postmaster would keep the shared memory attached and
            // stop the server from starting again).
            if !BackgroundWorker::wait_latch(sleep.map(Duration::from_secs_f64)) {
                self.save_state(true);
                return;
            }
        }
    }
}

/// How to update, for the WARNINGs of an old or affected version.
const UPDATE_HINT: &str = "Install the new version of the timescaledb_telemetry package, restart the server, \
                           then run ALTER EXTENSION timescaledb_telemetry UPDATE in each database that has it.";

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
        .set_hint(UPDATE_HINT)
        .report(PgLogLevel::WARNING);
    } else {
        log!("the \"timescaledb_telemetry\" extension is up to date (latest version {})", latest.as_str());
    }
}

/// The WARNING of SPEC §9 for an advisory that affects the installed version.
fn log_advisory(advisory: &Advisory) {
    let (message, detail) = advisory::log_lines(advisory, INSTALLED_VERSION);
    ErrorReport::new(PgSqlErrorCode::ERRCODE_WARNING, message, "timescaledb_telemetry launcher")
        .set_detail(detail)
        .set_hint(UPDATE_HINT)
        .report(PgLogLevel::WARNING);
}

/// The report of database `oid` that the endpoint now has becomes its last sent
/// (`get_telemetry_last_sent()`).
fn keep_sent(oid: u32) {
    if let Err(e) = std::fs::rename(sent_path(oid, "sending"), sent_path(oid, "json")) {
        debug1!("timescaledb_telemetry: could not keep the report sent: {e}");
    }
}

/// Removes the last sent reports of databases the state does not know (dropped while the
/// server was down, or a lost state), and unfinished writes: the directory holds one file
/// per known database.
fn forget_sent_unless_known(state: &State) {
    let Ok(entries) = std::fs::read_dir(SENT_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let oid = name.to_str().and_then(|n| n.split('.').next()).and_then(|n| n.parse::<u32>().ok());
        // A temporary file is a write that a stop cut short (the request thread's).
        let unfinished = name.to_str().is_some_and(|n| n.ends_with(".tmp"));
        if unfinished || !oid.is_some_and(|oid| state.databases.contains_key(&oid)) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Entry point of the launcher.
#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn timescaledb_telemetry_launcher_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    // pg_cancel_backend() of the launcher cancels nothing: it runs no statement of anyone's,
    // and a cancel would otherwise raise an ERROR at its next interrupt check and end it.
    // SAFETY: ignoring a signal is async-signal-safe and touches no memory of ours.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    // No database: the launcher only reads the shared catalog pg_database.
    BackgroundWorker::connect_worker_to_spi(None, None);
    super::launcher_started();
    Launcher::new().run();
    // Asked to stop (pg_terminate_backend, a shutdown) or orphaned. Exit code 1 tells the
    // postmaster to start a launcher again after the restart interval (it does not during a
    // shutdown); an exit with 0 would unregister the launcher until the server restarts.
    // SAFETY: proc_exit runs the exit callbacks (launcher_started's included) and never
    // returns.
    unsafe { pg_sys::proc_exit(1) };
}

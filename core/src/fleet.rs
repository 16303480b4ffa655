//! The launcher's rules (SPEC §5) as a pure state machine: the **fleet** is every database
//! the launcher may visit, with its schedule and status. The launcher (`worker::launcher`)
//! tells it what happened — a list of databases read, a wake-up from CREATE EXTENSION, a
//! reload, a collector's findings, an answer — and performs the [`Action`]s it returns:
//! start or stop a collector, send a report, write a log line, save the state. Every
//! decision is here, so every rule is a unit test without a server.
//!
//! Vocabulary: a **visit** is one collector's look into one database (numbered, so that its
//! findings are never mistaken for another visit's); **due** is when a database's next
//! visit should start (Unix seconds; infinity: only when woken).
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashSet};

use crate::functions::table::Usage;
use crate::handover::Collected;
use crate::http::{one_line, Answer, SendError};
use crate::log_budget::LogBudget;
use crate::schedule::{self, Jitter};
use sha2::{Digest, Sha256};

use crate::advisory::Advisory;
use crate::state::{Attempt, DbStatus, SeenAdvisory, State};
use crate::version::Version;

/// A collector that has not finished after this long is stopped and counted as a failure.
pub const COLLECTOR_MAX_SECS: f64 = 60.0;
/// No free worker slot: try again after this long.
pub const REGISTER_RETRY_SECS: f64 = 5.0;
/// How often the launcher looks at its requests while one is in flight.
pub const POLL_WHILE_SENDING_SECS: f64 = 0.05;
/// While a collector runs, the launcher looks at it at least this often (the postmaster's
/// notice when it stops could be lost).
const POLL_WHILE_COLLECTING_SECS: f64 = 1.0;
/// The longest single sleep: the server's latch wait takes an `int` of milliseconds (about
/// 24.8 days), so a longer wait (an interval or backoff of weeks) is slept in pieces.
pub const MAX_SLEEP_SECS: f64 = 3600.0;
/// A wake-up that does not say which database it is about (too many at once) looks again at
/// each database not known to have the extension, but at most once per this many seconds.
pub const PROBE_SPACING_SECS: f64 = 10.0;
/// A database that woke us is looked at again at once, but never sooner than this after its
/// last visit began: a loop of CREATE/DROP EXTENSION in it takes one visit per this long.
pub const NAMED_SPACING_SECS: f64 = 2.0;

/// The settings the rules depend on, read by the launcher at start and at each reload.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Seconds between two reports of a database.
    pub interval: f64,
    /// Where reports go.
    pub endpoint: String,
    /// Bound on one request, in seconds.
    pub timeout_secs: u64,
}

/// A connectable database, as read from pg_database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Database {
    pub oid: u32,
    pub name: String,
}

/// How important a log line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Log,
    Debug1,
}

/// What the launcher is to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Start a collector for visit `visit` of database `oid` (findings of earlier visits to
    /// it are discarded first). Answer with [`Fleet::no_slot`] if no worker slot is free.
    Collect { oid: u32, visit: u32 },
    /// Stop the running collector: it is past its bound.
    StopCollector,
    /// Deliver `body` (a report's JSON) of database `oid`, whose uuid is `db_uuid`, to
    /// `endpoint`, bounded by `timeout_secs`; answer with [`Fleet::answered`].
    Send { oid: u32, body: Vec<u8>, db_uuid: String, endpoint: String, timeout_secs: u64 },
    /// The endpoint has the report of database `oid` last sent: keep it as the last sent.
    KeepSent { oid: u32 },
    /// Database `oid` is gone (or its extension is): remove its last sent report.
    ForgetSent { oid: u32 },
    /// Write the WARNING of SPEC §9 for an advisory affecting the installed version.
    Advisory { advisory: Advisory },
    /// Write `line` to the server log.
    Log { level: Level, line: String },
    /// Write the version line of SPEC §5 for `latest` (a WARNING when it is newer than us).
    VersionLine { latest: Version },
    /// Save [`Fleet::state`]; on failure, tell [`Fleet::state_not_saved`].
    SaveState,
    /// The endpoint has the report of database `oid`: subtract the function usage it
    /// carried from the shared counts.
    Acknowledge { oid: u32, usage: Usage },
}

/// How many databases one wake-up can name; more at once set [`WakeSet::others`].
pub const WAKE_SLOTS: usize = 8;

/// The wake-ups that CREATE EXTENSION leaves for the launcher (kept in shared memory): the
/// databases it committed in, and a flag for more than fit. Fixed size: any number of
/// commits costs the same memory.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct WakeSet {
    oids: [u32; WAKE_SLOTS],
    len: u32,
    others: bool,
}

impl WakeSet {
    /// CREATE EXTENSION committed in database `oid`.
    pub fn add(&mut self, oid: u32) {
        let len = self.len as usize;
        if self.oids[..len].contains(&oid) {
            return;
        }
        if len < WAKE_SLOTS {
            self.oids[len] = oid;
            self.len += 1;
        } else {
            self.others = true;
        }
    }

    /// The wake-up to handle, if any, leaving the set empty.
    pub fn take(&mut self) -> Option<WakeUp> {
        if self.len == 0 && !self.others {
            return None;
        }
        let wake = WakeUp { databases: self.oids[..self.len as usize].to_vec(), others: self.others };
        *self = WakeSet::default();
        Some(wake)
    }
}

/// What the fleet knows of one connectable database.
#[derive(Debug)]
struct Db {
    name: String,
    /// Unknown until a collector has looked.
    has_extension: Option<bool>,
    due: f64,
    /// When its last visit started.
    visited_at: f64,
    /// When CREATE EXTENSION in it last woke us: a visit that started before then may have
    /// looked too early (or at the extension that was dropped since).
    woken_at: f64,
    /// When a wake-up that named no database wants it looked at (infinity: none pending).
    probe_at: f64,
    /// Its last visit found the level `basic`, or none was made yet: its function usage is
    /// reported, and so kept (see [`Fleet::usage_to_give_back`]).
    reports_usage: bool,
}

/// Databases whose function usage is given back (see [`Fleet::usage_to_give_back`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GiveBack {
    pub gone: Vec<u32>,
    pub unreported: Vec<u32>,
}

/// The databases a wake-up is about.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WakeUp {
    /// Databases in which CREATE EXTENSION committed.
    pub databases: Vec<u32>,
    /// More wake-ups came than could be told apart: some database not listed may have the
    /// extension now.
    pub others: bool,
}

/// The visit in progress.
#[derive(Debug)]
struct Visit {
    oid: u32,
    started: f64,
    /// Past its bound: told to stop, its failure recorded; waiting for it to exit.
    stopping: bool,
}

/// The most advisory WARNINGs one answer writes; the rest are one line.
pub const MAX_ADVISORY_LINES: usize = 10;
/// The most advisory ids remembered as logged within the interval after they left the answers.
const MAX_REMEMBERED_ADVISORIES: usize = 1000;
/// The most DEBUG1 lines about skipped advisories one answer writes.
const MAX_SKIPPED_LINES: usize = 5;

/// A report being sent.
struct InFlight {
    /// When it must be answered by.
    deadline: f64,
    started: f64,
    bytes: u64,
    sha256: String,
}

/// Every database's schedule and status, and the launcher's log budget.
pub struct Fleet {
    config: Config,
    state: State,
    dbs: BTreeMap<u32, Db>,
    collecting: Option<Visit>,
    /// Databases whose report is being sent.
    sending: BTreeMap<u32, InFlight>,
    /// The function usage each report in flight carries.
    sent_usage: BTreeMap<u32, Usage>,
    jitter: Jitter,
    budget: LogBudget,
    register_again_at: f64,
    next_visit: u32,
    /// Databases dropped (or made unconnectable) since the function usage was last given
    /// back.
    gone: Vec<u32>,
    /// When each advisory id was last logged, within the interval (bounded).
    advisories_logged: BTreeMap<String, f64>,
}

impl Fleet {
    /// A fleet with the saved `state` (of a previous launcher, or empty); `seed` seeds the
    /// jitter and the visit numbers (so a restarted launcher's numbers differ).
    pub fn new(config: Config, state: State, seed: u64) -> Fleet {
        Fleet {
            config,
            state,
            dbs: BTreeMap::new(),
            collecting: None,
            sending: BTreeMap::new(),
            sent_usage: BTreeMap::new(),
            jitter: Jitter::new(seed),
            budget: LogBudget::default(),
            register_again_at: f64::NEG_INFINITY,
            next_visit: seed as u32,
            gone: Vec::new(),
            advisories_logged: BTreeMap::new(),
        }
    }

    /// The databases whose function usage nobody will report, so that their slots of the
    /// usage table can be given back: `gone`, those dropped since the last call and those
    /// found without the extension; `unreported`, those whose level is below `basic` (their
    /// sessions may still count at their own level, and a change of level would report
    /// it: given back only when the table fills up). Sorted.
    pub fn usage_to_give_back(&mut self) -> GiveBack {
        let mut gone: Vec<u32> = std::mem::take(&mut self.gone);
        gone.extend(self.dbs.iter().filter(|(_, db)| db.has_extension == Some(false)).map(|(oid, _)| *oid));
        gone.sort_unstable();
        gone.dedup();
        let unreported = self
            .dbs
            .iter()
            .filter(|(_, db)| db.has_extension != Some(false) && !db.reports_usage)
            .map(|(oid, _)| *oid)
            .collect();
        GiveBack { gone, unreported }
    }

    /// The state to save (and that `get_telemetry_status()` reads).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The current list of connectable databases: new ones are visited at once (or, if they
    /// reported before a restart, when their interval is over); dropped ones are forgotten.
    pub fn databases(&mut self, present: &[Database], now: f64) -> Vec<Action> {
        let mut actions = Vec::new();
        // Looked up once per known database: a set, not a scan of `present` each time (with
        // a thousand databases, twice per visit, that was a million comparisons a call).
        let present_oids: HashSet<u32> = present.iter().map(|d| d.oid).collect();
        let gone = &mut self.gone;
        self.dbs.retain(|oid, _| {
            let kept = present_oids.contains(oid);
            if !kept {
                gone.push(*oid);
            }
            kept
        });
        let forgotten: Vec<u32> =
            self.state.databases.keys().filter(|oid| !present_oids.contains(oid)).copied().collect();
        for oid in forgotten {
            self.state.databases.remove(&oid);
            actions.push(Action::ForgetSent { oid });
        }
        if actions.iter().any(|a| matches!(a, Action::ForgetSent { .. })) {
            actions.push(Action::SaveState);
        }
        for d in present {
            let last_success = self.state.databases.get(&d.oid).and_then(|s| s.last_success);
            let interval = self.config.interval;
            let db = self.dbs.entry(d.oid).or_insert_with(|| Db {
                name: d.name.clone(),
                has_extension: None,
                due: schedule::first_attempt(now, interval, last_success),
                visited_at: f64::NEG_INFINITY,
                woken_at: f64::NEG_INFINITY,
                probe_at: f64::INFINITY,
                reports_usage: true,
            });
            db.name.clone_from(&d.name);
        }
        actions
    }

    /// CREATE EXTENSION committed in the databases `wake.databases`: each is looked at again
    /// now, also one known to have the extension (it may have been dropped and created
    /// again, with a new uuid). Only when the wake-up could not say where
    /// (`wake.others`) is every database not known to have the extension looked at, each
    /// at most once per [`PROBE_SPACING_SECS`]: a loop of CREATE/DROP EXTENSION costs the
    /// other databases nothing more. `present` is the current list of databases.
    pub fn woken(&mut self, wake: &WakeUp, present: &[Database], now: f64) -> Vec<Action> {
        let actions = self.databases(present, now);
        let visiting = self.collecting.as_ref().map(|v| v.oid);
        for (oid, db) in self.dbs.iter_mut() {
            let busy = self.sending.contains_key(oid) || visiting == Some(*oid);
            if wake.databases.contains(oid) {
                db.woken_at = now;
                // It has the extension (again) now: its usage is kept until a visit says.
                db.has_extension = None;
                db.reports_usage = true;
                // While busy, the end of this visit looks again (collector_stopped, success).
                if !busy {
                    db.due = now.max(db.visited_at + NAMED_SPACING_SECS);
                }
            } else if wake.others && db.has_extension != Some(true) {
                db.probe_at = db.probe_at.min(now.max(db.visited_at + PROBE_SPACING_SECS));
                if !busy {
                    db.due = db.due.min(db.probe_at);
                }
            }
        }
        actions
    }

    /// The configuration was reloaded: a shorter interval takes effect now, not after the
    /// old one.
    pub fn reloaded(&mut self, config: Config, now: f64) -> Vec<Action> {
        let shorter = config.interval < self.config.interval;
        self.config = config;
        if !shorter {
            return Vec::new();
        }
        let cap = now + self.config.interval;
        let capped: Vec<u32> = self
            .dbs
            .iter()
            .filter(|(oid, db)| db.due.is_finite() && db.due > cap && !self.sending.contains_key(oid))
            .map(|(oid, _)| *oid)
            .collect();
        for oid in capped {
            let due = schedule::after_success(now, self.config.interval, self.jitter.draw());
            self.set_due(oid, due);
        }
        vec![Action::SaveState]
    }

    /// The database whose visit is most overdue, if a visit may start now. The launcher
    /// then reads the list of databases afresh and calls [`Fleet::start_visit`].
    pub fn visit_due(&self, now: f64) -> Option<u32> {
        if self.collecting.is_some() || now < self.register_again_at {
            return None;
        }
        self.dbs
            .iter()
            .filter(|(oid, db)| db.due <= now && !self.sending.contains_key(oid))
            .min_by(|a, b| a.1.due.total_cmp(&b.1.due))
            .map(|(oid, _)| *oid)
    }

    /// Starts the visit [`Fleet::visit_due`] named, against the fresh list `present` (the
    /// database may have gone meanwhile).
    pub fn start_visit(&mut self, oid: u32, present: &[Database], now: f64) -> Vec<Action> {
        let mut actions = self.databases(present, now);
        if !self.dbs.contains_key(&oid) || self.collecting.is_some() {
            return actions;
        }
        let visit = self.next_visit;
        self.next_visit = self.next_visit.wrapping_add(1);
        self.collecting = Some(Visit { oid, started: now, stopping: false });
        if let Some(db) = self.dbs.get_mut(&oid) {
            db.visited_at = now;
            db.probe_at = f64::INFINITY; // this visit is the probe
        }
        actions.push(Action::Collect { oid, visit });
        actions
    }

    /// No worker slot was free for the collector just asked for: try again a little later.
    pub fn no_slot(&mut self, now: f64) {
        self.collecting = None;
        self.register_again_at = now + REGISTER_RETRY_SECS;
    }

    /// The collector is still running at `now`: past its bound, it is stopped and its
    /// visit counted as failed (the next visit is then scheduled as after any failure).
    pub fn collector_running(&mut self, now: f64) -> Vec<Action> {
        let Some(c) =
            self.collecting.as_mut().filter(|c| !c.stopping && now - c.started >= COLLECTOR_MAX_SECS)
        else {
            return Vec::new();
        };
        c.stopping = true;
        let oid = c.oid;
        let mut actions = vec![Action::StopCollector];
        if self.dbs.contains_key(&oid) {
            let error = format!("the collector did not finish within {COLLECTOR_MAX_SECS} s");
            actions.extend(self.failure(oid, None, "collect", &error, now));
        }
        actions
    }

    /// The collector has stopped, leaving `findings` (`None`: it left nothing); `present` is
    /// the current list of databases.
    pub fn collector_stopped(
        &mut self,
        findings: Option<Collected>,
        present: &[Database],
        now: f64,
    ) -> Vec<Action> {
        let Some(visit) = self.collecting.take() else { return Vec::new() };
        if visit.stopping {
            return Vec::new(); // already counted as failed
        }
        let oid = visit.oid;
        let mut actions = self.databases(present, now);
        if !self.dbs.contains_key(&oid) {
            return actions; // dropped (or made a template) while we looked
        }
        match findings {
            Some(Collected::Absent) => {
                let db = self.dbs.get_mut(&oid).expect("present");
                db.has_extension = Some(false);
                // Woken by a CREATE EXTENSION that may have committed after this collector
                // looked: look again at once (or, for a wake-up that named no database, when
                // its probe is due). Otherwise wait for the next wake-up.
                db.due = if db.woken_at >= visit.started {
                    now.max(visit.started + NAMED_SPACING_SECS)
                } else {
                    db.probe_at
                };
                if self.state.databases.remove(&oid).is_some() {
                    actions.push(Action::ForgetSent { oid });
                    actions.push(Action::SaveState);
                }
            }
            Some(Collected::Off) => {
                let db = self.dbs.get_mut(&oid).expect("present");
                db.has_extension = Some(true);
                db.reports_usage = false;
                let endpoint = self.config.endpoint.clone();
                let status = self.status(oid);
                status.level = Some("off".into());
                status.endpoint = Some(endpoint);
                let due = schedule::after_success(now, self.config.interval, self.jitter.draw());
                self.set_due(oid, due);
                actions.push(Action::SaveState);
            }
            Some(Collected::Report { level, report, usage }) => {
                let db = self.dbs.get_mut(&oid).expect("present");
                db.has_extension = Some(true);
                db.reports_usage = level == "basic";
                let endpoint = self.config.endpoint.clone();
                let status = self.status(oid);
                status.level = Some(level);
                status.endpoint = Some(endpoint.clone());
                status.last_attempt = Some(now);
                self.set_due(oid, f64::INFINITY);
                let body = serde_json::to_vec(&report).unwrap_or_default();
                let db_uuid = report.get("db_uuid").and_then(|u| u.as_str()).unwrap_or_default().to_string();
                let sha256 = format!("{:x}", Sha256::digest(&body));
                let deadline = now + self.config.timeout_secs as f64;
                self.sending
                    .insert(oid, InFlight { deadline, started: now, bytes: body.len() as u64, sha256 });
                self.sent_usage.insert(oid, usage);
                let timeout_secs = self.config.timeout_secs;
                actions.push(Action::Send { oid, body, db_uuid, endpoint, timeout_secs });
            }
            Some(Collected::Failed { error }) => {
                actions.extend(self.failure(oid, None, "collect", &error, now))
            }
            None => actions.extend(self.failure(
                oid,
                None,
                "collect",
                "the report could not be collected (see the server log)",
                now,
            )),
        }
        actions
    }

    /// Whether the request for `oid` should have been answered by `now` (the launcher then
    /// gives up on it and reports it as timed out).
    pub fn send_overdue(&self, oid: u32, now: f64) -> bool {
        self.sending.get(&oid).is_some_and(|sent| now >= sent.deadline)
    }

    /// The timeout in force, for a request given up by [`Fleet::send_overdue`].
    pub fn timeout_secs(&self) -> u64 {
        self.config.timeout_secs
    }

    /// The request for `oid` ended with `result`.
    pub fn answered(&mut self, oid: u32, result: Result<Answer, SendError>, now: f64) -> Vec<Action> {
        let sent = self.sending.remove(&oid);
        let usage = self.sent_usage.remove(&oid).unwrap_or_default();
        // A 2xx answer: the endpoint has the report, whether or not its answer made sense.
        let delivered = match &result {
            Ok(_) => true,
            Err(e) => e.delivered(),
        };
        let mut actions = Vec::new();
        if delivered && usage != Usage::default() {
            actions.push(Action::Acknowledge { oid, usage });
        }
        if !self.dbs.contains_key(&oid) {
            return actions;
        }
        if delivered {
            actions.push(Action::KeepSent { oid });
        }
        let attempt = Attempt {
            at: sent.as_ref().map_or(now, |s| s.started),
            ok: delivered,
            status: match &result {
                Ok(answer) => answer.status,
                Err(e) => e.status(),
            },
            error: result.as_ref().err().map(|e| e.to_string()),
            bytes: sent.as_ref().map(|s| s.bytes),
            ms: sent.as_ref().map(|s| ((now - s.started).max(0.0) * 1000.0).round() as u64),
            sha256: sent.map(|s| s.sha256),
        };
        self.status(oid).record(attempt);
        actions.extend(match result {
            Ok(answer) => self.success(oid, answer, now),
            Err(e) => self.failure(oid, e.status(), &e.kind(), &e.to_string(), now),
        });
        actions
    }

    /// The advisories of the latest answer that affect the installed version replace the
    /// known ones; each is logged when first seen, then at most once per interval (also
    /// when it left an answer and came back), at most [`MAX_ADVISORY_LINES`] per answer and
    /// one line for the rest.
    fn advisories(&mut self, affecting: Vec<Advisory>, now: f64) -> Vec<Action> {
        let interval = self.config.interval;
        for seen in &self.state.advisories {
            self.advisories_logged.insert(seen.advisory.id.clone(), seen.last_logged);
        }
        self.advisories_logged.retain(|_, at| now - *at < interval);
        while self.advisories_logged.len() > MAX_REMEMBERED_ADVISORIES {
            self.advisories_logged.pop_first();
        }
        let known = std::mem::take(&mut self.state.advisories);
        let mut actions = Vec::new();
        let mut unsaid = 0;
        for advisory in affecting {
            if self.state.advisories.iter().any(|a| a.advisory.id == advisory.id) {
                continue; // the same id twice in one answer
            }
            let before = known.iter().find(|a| a.advisory.id == advisory.id);
            let first_seen = before.map_or(now, |a| a.first_seen);
            let mut last_logged =
                self.advisories_logged.get(&advisory.id).copied().unwrap_or(f64::NEG_INFINITY);
            if now - last_logged >= interval {
                if actions.len() < MAX_ADVISORY_LINES {
                    last_logged = now;
                    actions.push(Action::Advisory { advisory: advisory.clone() });
                } else {
                    unsaid += 1;
                }
            }
            self.state.advisories.push(SeenAdvisory { advisory, first_seen, last_logged });
        }
        if unsaid > 0 {
            let line = format!(
                "timescaledb_telemetry: {unsaid} more security advisories affect the installed version: \
                 SELECT * FROM get_telemetry_advisories()"
            );
            actions.push(Action::Log { level: Level::Log, line });
        }
        actions
    }

    /// Saving the state failed with `error`: a log line, under the budget.
    pub fn state_not_saved(&mut self, error: &str, now: f64) -> Vec<Action> {
        let line = format!("timescaledb_telemetry: could not save the worker state: {}", one_line(error));
        vec![self.budgeted("state file", line, now)]
    }

    /// Seconds to sleep until something is due: briefly while requests are in flight, at
    /// most a second while a collector runs, `None` (until a signal) when nothing is
    /// scheduled.
    pub fn sleep_secs(&self, now: f64) -> Option<f64> {
        if !self.sending.is_empty() {
            return Some(POLL_WHILE_SENDING_SECS);
        }
        if self.collecting.is_some() {
            // Nothing else may start meanwhile; the postmaster's notice wakes us earlier.
            return Some(POLL_WHILE_COLLECTING_SECS);
        }
        let next =
            self.dbs.values().map(|db| db.due).fold(f64::INFINITY, f64::min).max(self.register_again_at);
        next.is_finite().then(|| (next - now).clamp(0.001, MAX_SLEEP_SECS))
    }

    fn status(&mut self, oid: u32) -> &mut DbStatus {
        self.state.databases.entry(oid).or_default()
    }

    /// The database's name, escaped to one line for the log (a name may hold anything).
    fn name(&self, oid: u32) -> String {
        self.dbs.get(&oid).map(|d| one_line(&d.name)).unwrap_or_else(|| oid.to_string())
    }

    fn set_due(&mut self, oid: u32, due: f64) {
        if let Some(db) = self.dbs.get_mut(&oid) {
            db.due = due;
        }
        self.status(oid).next_attempt = due.is_finite().then_some(due);
    }

    fn budgeted(&mut self, kind: &str, line: String, now: f64) -> Action {
        let level = if self.budget.failure_line(kind, now) { Level::Log } else { Level::Debug1 };
        Action::Log { level, line }
    }

    /// Whether CREATE EXTENSION in `oid` committed since its last visit started: what that
    /// visit saw may be the extension that was dropped since.
    fn woken_since_visit(&self, oid: u32) -> bool {
        self.dbs.get(&oid).is_some_and(|db| db.woken_at >= db.visited_at)
    }

    fn success(&mut self, oid: u32, answer: Answer, now: f64) -> Vec<Action> {
        let due = if self.woken_since_visit(oid) {
            now.max(self.dbs.get(&oid).map_or(now, |db| db.visited_at + NAMED_SPACING_SECS))
        } else {
            schedule::after_success(now, self.config.interval, self.jitter.draw())
        };
        let status = self.status(oid);
        let failures = status.failures;
        status.last_success = Some(now);
        status.last_status = answer.status;
        status.last_error = None;
        if let Some(latest) = &answer.latest {
            status.latest_version = Some(latest.as_str().to_string());
        }
        status.failures = 0;
        self.set_due(oid, due);
        let mut actions = vec![Action::SaveState];
        let skipped = &answer.advisories.skipped;
        for why in skipped.iter().take(MAX_SKIPPED_LINES) {
            actions.push(Action::Log { level: Level::Debug1, line: format!("timescaledb_telemetry: {why}") });
        }
        if skipped.len() > MAX_SKIPPED_LINES {
            let line = format!(
                "timescaledb_telemetry: {} more advisories skipped",
                skipped.len() - MAX_SKIPPED_LINES
            );
            actions.push(Action::Log { level: Level::Debug1, line });
        }
        if failures > 0 && self.budget.recovery_line() {
            let line = format!(
                "telemetry report for database \"{}\" succeeded after {failures} failed attempt{}",
                self.name(oid),
                if failures == 1 { "" } else { "s" }
            );
            actions.push(Action::Log { level: Level::Log, line });
        }
        if let Some(at) = answer.signed_at {
            self.state.signed_at = Some(self.state.signed_at.map_or(at, |newest| newest.max(at)));
        }
        // No manifest in an air-gapped directory: nothing was answered.
        if let Some(latest) = answer.latest {
            actions.extend(self.advisories(answer.advisories.affecting, now));
            if self.budget.version_line(latest.as_str(), now, self.config.interval) {
                actions.push(Action::VersionLine { latest });
            }
        }
        actions
    }

    /// Records a failed visit; `kind` keys the log budget, `reason` is what the log says.
    fn failure(
        &mut self,
        oid: u32,
        http_status: Option<u16>,
        kind: &str,
        reason: &str,
        now: f64,
    ) -> Vec<Action> {
        let reason = one_line(reason);
        let status = self.status(oid);
        status.failures += 1;
        status.last_status = http_status;
        status.last_error = Some(reason.clone());
        let failures = status.failures;
        let mut due = schedule::after_failure(now, self.config.interval, failures, self.jitter.draw());
        if self.woken_since_visit(oid) {
            due = due.min(now + PROBE_SPACING_SECS);
        }
        self.set_due(oid, due);
        let line = format!("telemetry report for database \"{}\" failed: {reason}", self.name(oid));
        vec![Action::SaveState, self.budgeted(kind, line, now)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const HOUR: f64 = 3600.0;

    fn config(interval: f64) -> Config {
        Config { interval, endpoint: "http://127.0.0.1:1/v1/metrics".into(), timeout_secs: 10 }
    }

    fn db(oid: u32, name: &str) -> Database {
        Database { oid, name: name.into() }
    }

    fn answer(version: &str) -> Answer {
        Answer {
            status: Some(200),
            latest: Version::parse(version),
            advisories: Default::default(),
            signed_at: None,
        }
    }

    fn report() -> Collected {
        Collected::Report { level: "basic".into(), report: json!({"db_uuid": "u"}), usage: Usage::default() }
    }

    /// A fleet at t = 0 knowing `dbs`, with nothing saved.
    fn fleet(interval: f64, dbs: &[Database]) -> Fleet {
        let mut f = Fleet::new(config(interval), State::default(), 42);
        f.databases(dbs, 0.0);
        f
    }

    /// Runs one visit of the most overdue database at `now`, returning its oid and actions.
    fn visit(f: &mut Fleet, dbs: &[Database], findings: Collected, now: f64) -> (u32, Vec<Action>) {
        let oid = f.visit_due(now).expect("a visit is due");
        let started = f.start_visit(oid, dbs, now);
        assert!(matches!(started.last(), Some(Action::Collect { oid: o, .. }) if *o == oid), "{started:?}");
        (oid, f.collector_stopped(Some(findings), dbs, now + 0.1))
    }

    fn logs(actions: &[Action]) -> Vec<(Level, String)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Log { level, line } => Some((*level, line.clone())),
                _ => None,
            })
            .collect()
    }

    fn due(f: &Fleet, oid: u32) -> f64 {
        f.dbs[&oid].due
    }

    #[test]
    fn a_wake_set_names_its_databases_once_and_flags_the_rest() {
        let mut set = WakeSet::default();
        assert_eq!(set.take(), None);
        set.add(5);
        set.add(5);
        assert_eq!(set.take(), Some(WakeUp { databases: vec![5], others: false }));
        assert_eq!(set.take(), None, "taken twice");
        for oid in 0..(WAKE_SLOTS as u32 + 3) {
            set.add(oid);
        }
        let wake = set.take().unwrap();
        assert_eq!(wake.databases.len(), WAKE_SLOTS);
        assert!(wake.others);
    }

    /// A wake-up from CREATE EXTENSION in `dbs`.
    fn wake(dbs: &[u32]) -> WakeUp {
        WakeUp { databases: dbs.to_vec(), others: false }
    }

    #[test]
    fn usage_nobody_will_report_is_given_back() {
        let dbs = [db(1, "with"), db(2, "without"), db(3, "unknown"), db(4, "no_functions")];
        let mut f = fleet(HOUR, &dbs);
        f.start_visit(1, &dbs, 0.0);
        f.collector_stopped(Some(report()), &dbs, 0.1);
        f.start_visit(2, &dbs, 0.2);
        f.collector_stopped(Some(Collected::Absent), &dbs, 0.3);
        let below_basic =
            Collected::Report { level: "no_functions".into(), report: json!({}), usage: Usage::default() };
        f.start_visit(4, &dbs, 0.4);
        f.collector_stopped(Some(below_basic), &dbs, 0.5);
        let give_back = |gone: &[u32], unreported: &[u32]| GiveBack {
            gone: gone.to_vec(),
            unreported: unreported.to_vec(),
        };
        assert_eq!(f.usage_to_give_back(), give_back(&[2], &[4]));
        // Dropped: given back once, then forgotten.
        f.databases(&[db(2, "without"), db(3, "unknown"), db(4, "no_functions")], 1.0);
        assert_eq!(f.usage_to_give_back(), give_back(&[1, 2], &[4]));
        assert_eq!(f.usage_to_give_back(), give_back(&[2], &[4]));
        // CREATE EXTENSION in 2: its usage is kept from the wake-up on.
        f.woken(&wake(&[2]), &dbs[1..], 2.0);
        assert_eq!(f.usage_to_give_back(), give_back(&[], &[4]));
    }

    #[test]
    fn drop_and_create_extension_between_visits_is_reported_at_once() {
        let dbs = [db(1, "a")];
        let mut f = fleet(HOUR, &dbs);
        let (oid, _) = visit(&mut f, &dbs, report(), 0.0);
        f.answered(oid, Ok(answer("0.1.0")), 0.2);
        assert!(due(&f, oid) > 0.9 * HOUR);
        // DROP EXTENSION + CREATE EXTENSION: a new uuid, reported now, not an hour later.
        f.woken(&wake(&[1]), &dbs, 100.0);
        assert_eq!(f.visit_due(100.0), Some(1));
    }

    #[test]
    fn a_wake_up_while_the_report_is_in_flight_looks_again_after_the_answer() {
        let dbs = [db(1, "a")];
        let mut f = fleet(HOUR, &dbs);
        let oid = f.visit_due(0.0).unwrap();
        f.start_visit(oid, &dbs, 0.0);
        f.collector_stopped(Some(report()), &dbs, 0.1);
        // The report in flight may carry the uuid of the extension just dropped.
        f.woken(&wake(&[1]), &dbs, 0.2);
        assert_eq!(f.visit_due(0.2), None, "a second visit while the first is being sent");
        f.answered(oid, Ok(answer("0.1.0")), 0.3);
        assert_eq!(f.visit_due(NAMED_SPACING_SECS), Some(1));
    }

    #[test]
    fn a_loop_of_create_and_drop_extension_costs_other_databases_nothing() {
        let dbs = [db(1, "mallory"), db(2, "b"), db(3, "c")];
        let mut f = fleet(HOUR, &dbs);
        for _ in 0..3 {
            visit(&mut f, &dbs, Collected::Absent, 0.0);
        }
        // mallory's database wakes us at every commit: only it is looked at.
        let mut visited = Vec::new();
        let mut t = 1.0;
        while t < 60.0 {
            f.woken(&wake(&[1]), &dbs, t);
            while let Some(oid) = f.visit_due(t) {
                visited.push(oid);
                f.start_visit(oid, &dbs, t);
                f.collector_stopped(Some(Collected::Absent), &dbs, t + 0.05);
            }
            t += 0.1;
        }
        assert!(visited.iter().all(|oid| *oid == 1), "{visited:?}");
    }

    #[test]
    fn a_wake_up_for_unknown_databases_probes_each_at_most_once_per_ten_seconds() {
        let dbs = [db(1, "a"), db(2, "b")];
        let mut f = fleet(HOUR, &dbs);
        for _ in 0..2 {
            visit(&mut f, &dbs, Collected::Absent, 0.0);
        }
        let others = WakeUp { databases: Vec::new(), others: true };
        let mut visits = 0;
        let mut t = 1.0;
        while t < 60.0 {
            f.woken(&others, &dbs, t);
            while let Some(oid) = f.visit_due(t) {
                visits += 1;
                f.start_visit(oid, &dbs, t);
                f.collector_stopped(Some(Collected::Absent), &dbs, t + 0.05);
            }
            t += 0.5;
        }
        // Two databases, each at most once per 10 s over a minute (the first at once).
        assert!(visits <= 2 * 6, "{visits} visits");
        assert!(visits >= 2 * 5, "{visits} visits: a probe was lost");
    }

    #[test]
    fn no_sleep_is_longer_than_the_servers_wait_can_hold() {
        // 50 days: 4.3e9 ms would overflow PostgreSQL's int milliseconds.
        let dbs = [db(1, "a")];
        let mut f = fleet(50.0 * 86400.0, &dbs);
        let (oid, _) = visit(&mut f, &dbs, report(), 0.0);
        f.answered(oid, Ok(answer("0.1.0")), 0.2);
        let sleep = f.sleep_secs(1.0).unwrap();
        assert!(sleep * 1000.0 <= f64::from(i32::MAX), "{sleep} s");
        assert_eq!(sleep, MAX_SLEEP_SECS);
        // The same for a long backoff: a failure at a 50-day interval.
        f.woken(&wake(&[1]), &dbs, 2.0);
        let (oid, _) = visit(&mut f, &dbs, report(), 2.0);
        f.answered(oid, Err(SendError::Status(503)), 3.0);
        assert!(f.sleep_secs(3.0).unwrap() <= MAX_SLEEP_SECS);
    }

    #[test]
    fn every_database_is_visited_at_once_after_start_one_at_a_time() {
        let dbs = [db(1, "a"), db(2, "b")];
        let mut f = fleet(HOUR, &dbs);
        let first = f.visit_due(0.0).unwrap();
        f.start_visit(first, &dbs, 0.0);
        assert_eq!(f.visit_due(0.0), None, "a second collector while one runs");
        f.collector_stopped(Some(Collected::Absent), &dbs, 0.5);
        assert_ne!(f.visit_due(0.5), Some(first));
        assert!(f.visit_due(0.5).is_some());
    }

    #[test]
    fn after_a_restart_a_recent_success_waits_for_the_rest_of_its_interval() {
        let mut state = State::default();
        state.databases.insert(1, DbStatus { last_success: Some(1000.0), ..Default::default() });
        let mut f = Fleet::new(config(HOUR), state, 1);
        f.databases(&[db(1, "a"), db(2, "b")], 1600.0);
        assert_eq!(due(&f, 1), 1000.0 + HOUR);
        assert_eq!(due(&f, 2), 1600.0);
    }

    fn advisory(id: &str) -> Advisory {
        Advisory {
            id: id.into(),
            aliases: vec![],
            severity: "high".into(),
            summary: "s".into(),
            fixed_in: Some("0.3.1".into()),
            url: None,
        }
    }

    fn answer_with(advisories: &[Advisory]) -> Answer {
        let affecting = advisories.to_vec();
        Answer { advisories: crate::advisory::Reading { affecting, skipped: vec![] }, ..answer("0.3.1") }
    }

    fn advisory_lines(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Advisory { advisory } => Some(advisory.id.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn an_advisory_is_logged_when_first_seen_then_once_per_interval_for_the_cluster() {
        let dbs = [db(1, "a"), db(2, "b")];
        let mut f = fleet(HOUR, &dbs);
        let (first, _) = visit(&mut f, &dbs, report(), 0.0);
        assert_eq!(advisory_lines(&f.answered(first, Ok(answer_with(&[advisory("A")])), 1.0)), ["A"]);
        // The other database's answer within the interval: known, not logged again; a new
        // advisory in it is.
        let (second, _) = visit(&mut f, &dbs, report(), 2.0);
        let both = [advisory("A"), advisory("B"), advisory("B")];
        assert_eq!(advisory_lines(&f.answered(second, Ok(answer_with(&both)), 3.0)), ["B"]);
        assert_eq!(f.state().advisories.len(), 2, "an id twice in one answer is one advisory");
        // An interval later: again, with the time it was first seen kept.
        assert_eq!(advisory_lines(&f.answered(first, Ok(answer_with(&both)), 1.0 + HOUR)), ["A"]);
        let again = f.answered(first, Ok(answer_with(&both)), 1.0 + HOUR);
        assert!(advisory_lines(&again).is_empty(), "twice in the same second");
        assert_eq!(f.state().advisories[0].first_seen, 1.0);
        assert_eq!(f.state().advisories[0].last_logged, 1.0 + HOUR);
        // An answer without them: none is known any more. Back in the next answer, A (logged
        // within the interval) is not logged again; B (logged more than one ago) is.
        f.answered(second, Ok(answer("0.3.1")), 5.0 + HOUR);
        assert!(f.state().advisories.is_empty());
        assert_eq!(advisory_lines(&f.answered(first, Ok(answer_with(&both)), 6.0 + HOUR)), ["B"]);
    }

    #[test]
    fn a_hundred_new_advisories_are_ten_warnings_and_one_line() {
        let dbs = [db(1, "a")];
        let mut f = fleet(HOUR, &dbs);
        let (oid, _) = visit(&mut f, &dbs, report(), 0.0);
        let many: Vec<Advisory> = (0..100).map(|i| advisory(&format!("A{i}"))).collect();
        let actions = f.answered(oid, Ok(answer_with(&many)), 1.0);
        assert_eq!(advisory_lines(&actions).len(), MAX_ADVISORY_LINES);
        let rest = logs(&actions);
        assert!(rest.iter().any(|(_, l)| l.contains("90 more security advisories")), "{rest:?}");
        assert_eq!(f.state().advisories.len(), 100);
    }

    #[test]
    fn every_attempt_goes_into_the_history_with_the_digest_of_its_body() {
        let dbs = [db(1, "a")];
        let mut f = fleet(HOUR, &dbs);
        let (oid, actions) = visit(&mut f, &dbs, report(), 0.0);
        assert!(actions.iter().any(|a| matches!(a, Action::Send { .. })));
        let after = f.answered(oid, Err(SendError::Status(503)), 0.35);
        assert!(!after.iter().any(|a| matches!(a, Action::KeepSent { .. })), "kept a report not delivered");
        let attempt = f.state().databases[&oid].history.back().unwrap().clone();
        // sha256 of {"db_uuid":"u"}
        assert_eq!(
            attempt.sha256.as_deref(),
            Some("c4012b704d5991b589799a87e92187b56007f48ae4ddf492092ccc1bd09d8f3a")
        );
        assert_eq!(
            (attempt.ok, attempt.status, attempt.bytes, attempt.ms),
            (false, Some(503), Some(15), Some(250))
        );
        assert_eq!(attempt.error.as_deref(), Some("HTTP status 503"));
        for i in 0..40 {
            let now = 3.0 * HOUR * (i + 1) as f64;
            let (oid, _) = visit(&mut f, &dbs, report(), now);
            let done = f.answered(oid, Ok(answer("0.1.0")), now + 0.2);
            assert!(done.contains(&Action::KeepSent { oid }));
        }
        let history = &f.state().databases[&oid].history;
        assert_eq!(history.len(), crate::state::HISTORY_LEN);
        assert!(history.iter().all(|a| a.ok && a.status == Some(200)));
    }

    #[test]
    fn a_report_is_sent_then_due_one_interval_later_with_jitter() {
        let dbs = [db(1, "a")];
        let mut f = fleet(HOUR, &dbs);
        let (oid, actions) = visit(&mut f, &dbs, report(), 0.0);
        let send = actions.iter().find(|a| matches!(a, Action::Send { .. })).expect("a send");
        assert_eq!(
            send,
            &Action::Send {
                oid,
                body: br#"{"db_uuid":"u"}"#.to_vec(),
                db_uuid: "u".into(),
                endpoint: "http://127.0.0.1:1/v1/metrics".into(),
                timeout_secs: 10
            }
        );
        assert_eq!(f.visit_due(1.0), None, "visited again while its report is in flight");
        let after = f.answered(oid, Ok(answer("0.1.0")), 2.0);
        assert!(after.contains(&Action::SaveState));
        let next = due(&f, oid) - 2.0;
        assert!((0.9 * HOUR..=1.1 * HOUR).contains(&next), "{next}");
        let status = &f.state().databases[&oid];
        assert_eq!((status.last_status, status.last_success), (Some(200), Some(2.0)));
        assert_eq!(status.next_attempt, Some(due(&f, oid)));
    }

    #[test]
    fn jitter_stays_within_ten_percent_over_many_draws() {
        let dbs = [db(1, "a")];
        let mut f = fleet(100.0, &dbs);
        let (mut low, mut high) = (f64::INFINITY, 0.0f64);
        let mut now = 0.0;
        for _ in 0..2000 {
            let (oid, _) = visit(&mut f, &dbs, report(), now);
            f.answered(oid, Ok(answer("0.1.0")), now);
            let delay = due(&f, oid) - now;
            assert!((90.0..=110.0).contains(&delay), "{delay}");
            (low, high) = (low.min(delay), high.max(delay));
            now = due(&f, oid);
        }
        assert!(low < 92.0 && high > 108.0, "jitter does not spread: {low}..{high}");
    }

    #[test]
    fn failures_back_off_from_a_minute_doubling_up_to_the_interval() {
        let dbs = [db(1, "a")];
        let mut f = fleet(HOUR, &dbs);
        let mut now = 0.0;
        for n in 1..=8u32 {
            let (oid, _) = visit(&mut f, &dbs, report(), now);
            f.answered(oid, Err(SendError::Status(503)), now);
            let expected = (60.0 * 2f64.powi(n as i32 - 1)).min(HOUR);
            let delay = due(&f, oid) - now;
            assert!((0.9 * expected..=1.1 * expected).contains(&delay), "failure {n}: {delay}");
            assert_eq!(f.state().databases[&oid].failures, n);
            now = due(&f, oid);
        }
    }

    #[test]
    fn the_same_kind_of_failure_is_logged_once_an_hour_across_databases() {
        let dbs = [db(1, "a"), db(2, "b")];
        let mut f = fleet(HOUR, &dbs);
        let la = logs(&f.answered(1, Err(SendError::Connect("refused".into())), 2.0));
        let lb = logs(&f.answered(2, Err(SendError::Connect("reset by peer".into())), 3.0));
        assert_eq!(
            la,
            vec![(
                Level::Log,
                "telemetry report for database \"a\" failed: could not connect: refused".into()
            )]
        );
        assert_eq!(lb[0].0, Level::Debug1, "same kind, other text, other database: {lb:?}");
        // Another kind is logged at once; the first kind again after an hour.
        assert_eq!(logs(&f.answered(1, Err(SendError::Status(500)), 100.0))[0].0, Level::Log);
        assert_eq!(logs(&f.answered(2, Err(SendError::Status(500)), 101.0))[0].0, Level::Debug1);
        assert_eq!(logs(&f.answered(2, Err(SendError::Connect("x".into())), 3700.0))[0].0, Level::Log);
        // The worker's own file errors are under the same budget.
        assert_eq!(logs(&f.state_not_saved("disk full", 3701.0))[0].0, Level::Log);
        assert_eq!(logs(&f.state_not_saved("disk full\nagain", 3702.0))[0].0, Level::Debug1);
    }

    #[test]
    fn the_first_success_after_failures_is_logged_once_for_the_cluster() {
        let dbs = [db(1, "a"), db(2, "b")];
        let mut f = fleet(HOUR, &dbs);
        f.answered(1, Err(SendError::Status(503)), 0.0);
        f.answered(2, Err(SendError::Status(503)), 1.0);
        let first = logs(&f.answered(1, Ok(answer("0.1.0")), 100.0));
        assert_eq!(
            first,
            vec![(Level::Log, "telemetry report for database \"a\" succeeded after 1 failed attempt".into())]
        );
        assert!(logs(&f.answered(2, Ok(answer("0.1.0")), 200.0)).is_empty());
    }

    #[test]
    fn the_version_line_comes_when_first_seen_on_change_and_once_per_interval() {
        let dbs = [db(1, "a"), db(2, "b")];
        let mut f = fleet(100.0, &dbs);
        let mut lines = |oid, version, now| {
            f.answered(oid, Ok(answer(version)), now)
                .iter()
                .filter(|a| matches!(a, Action::VersionLine { .. }))
                .count()
        };
        assert_eq!(lines(1, "2.0.0", 0.0), 1);
        assert_eq!(lines(2, "2.0.0", 1.0), 0, "second database, same answer");
        assert_eq!(lines(1, "2.1.0", 95.0), 1, "a change");
        assert_eq!(lines(2, "2.1.0", 150.0), 0);
        assert_eq!(lines(1, "2.1.0", 196.0), 1, "an interval later");
    }

    #[test]
    fn level_off_sends_nothing_and_looks_again_an_interval_later() {
        let dbs = [db(1, "a")];
        let mut f = fleet(HOUR, &dbs);
        let (oid, actions) = visit(&mut f, &dbs, Collected::Off, 0.0);
        assert!(!actions.iter().any(|a| matches!(a, Action::Send { .. })));
        assert_eq!(f.state().databases[&oid].level.as_deref(), Some("off"));
        assert!(due(&f, oid) >= 0.9 * HOUR);
    }

    #[test]
    fn a_database_without_the_extension_waits_for_a_wake_up() {
        let dbs = [db(1, "a")];
        let mut f = fleet(HOUR, &dbs);
        visit(&mut f, &dbs, Collected::Absent, 0.0);
        assert_eq!(f.sleep_secs(1.0), None, "sleeps until a signal");
        f.woken(&wake(&[1]), &dbs, 50.0);
        assert_eq!(f.visit_due(50.0), Some(1));
    }

    #[test]
    fn a_wake_up_during_a_visit_that_saw_no_extension_looks_again_at_once() {
        // Commit 941737b's race, replayed: the collector looks before CREATE EXTENSION
        // commits, the wake-up comes while it runs, its "no extension" arrives after.
        let dbs = [db(1, "a")];
        let mut f = fleet(HOUR, &dbs);
        f.start_visit(1, &dbs, 10.0);
        f.woken(&wake(&[1]), &dbs, 10.2);
        f.collector_stopped(Some(Collected::Absent), &dbs, 10.4);
        assert_eq!(f.visit_due(10.4), None, "looked again sooner than NAMED_SPACING_SECS");
        assert_eq!(f.visit_due(10.0 + NAMED_SPACING_SECS), Some(1), "the wake-up was lost");
        // Without a wake-up since the visit began, "no extension" waits for one.
        f.start_visit(1, &dbs, 20.0);
        f.collector_stopped(Some(Collected::Absent), &dbs, 20.4);
        assert_eq!(f.visit_due(30.0), None);
    }

    #[test]
    fn a_reload_with_a_shorter_interval_reschedules_at_once() {
        let dbs = [db(1, "a")];
        let mut f = fleet(HOUR, &dbs);
        let (oid, _) = visit(&mut f, &dbs, report(), 0.0);
        f.answered(oid, Ok(answer("0.1.0")), 0.0);
        f.reloaded(Config { interval: 10.0, ..config(HOUR) }, 100.0);
        assert!((109.0..=111.0).contains(&due(&f, oid)), "{}", due(&f, oid));
        // A longer one changes nothing scheduled.
        let before = due(&f, oid);
        assert!(f.reloaded(config(HOUR), 101.0).is_empty());
        assert_eq!(due(&f, oid), before);
    }

    #[test]
    fn a_collector_past_its_bound_is_stopped_counted_once_and_holds_its_slot() {
        let dbs = [db(1, "a"), db(2, "b")];
        let mut f = fleet(HOUR, &dbs);
        let oid = f.visit_due(0.0).unwrap();
        f.start_visit(oid, &dbs, 0.0);
        assert!(f.collector_running(59.0).is_empty());
        let actions = f.collector_running(60.0);
        assert_eq!(actions[0], Action::StopCollector);
        assert!(logs(&actions)[0].1.ends_with("failed: the collector did not finish within 60 s"));
        assert!(f.collector_running(61.0).is_empty(), "stopped twice");
        assert_eq!(f.visit_due(61.0), None, "a third worker slot while one is stopping");
        assert!(f.collector_stopped(None, &dbs, 70.0).is_empty(), "counted twice");
        assert_eq!(f.state().databases[&oid].failures, 1);
        assert!(f.visit_due(70.0).is_some());
    }

    #[test]
    fn a_collector_that_left_nothing_is_a_failure() {
        let dbs = [db(1, "a")];
        let mut f = fleet(HOUR, &dbs);
        f.start_visit(1, &dbs, 0.0);
        let actions = f.collector_stopped(None, &dbs, 1.0);
        assert!(logs(&actions)[0]
            .1
            .ends_with("failed: the report could not be collected (see the server log)"));
    }

    #[test]
    fn no_free_slot_retries_after_five_seconds() {
        let dbs = [db(1, "a")];
        let mut f = fleet(HOUR, &dbs);
        f.start_visit(1, &dbs, 0.0);
        f.no_slot(0.0);
        assert_eq!(f.visit_due(4.9), None);
        assert_eq!(f.visit_due(5.0), Some(1));
    }

    #[test]
    fn a_dropped_database_is_forgotten_with_its_status() {
        let dbs = [db(1, "a"), db(2, "b")];
        let mut f = fleet(HOUR, &dbs);
        let (oid, _) = visit(&mut f, &dbs, report(), 0.0);
        f.answered(oid, Ok(answer("0.1.0")), 0.0);
        let rest: Vec<Database> = dbs.iter().filter(|d| d.oid != oid).cloned().collect();
        assert_eq!(f.databases(&rest, 1.0), vec![Action::ForgetSent { oid }, Action::SaveState]);
        assert!(!f.state().databases.contains_key(&oid));
        // An answer for it that arrives later changes nothing.
        assert!(f.answered(oid, Ok(answer("0.1.0")), 2.0).is_empty());
    }

    #[test]
    fn the_launcher_sleeps_until_the_next_due_visit_and_never_spins() {
        let dbs = [db(1, "a"), db(2, "b")];
        let mut f = fleet(HOUR, &dbs);
        // Both due now: one is collected; the other waits for it without a busy loop.
        f.start_visit(1, &dbs, 0.0);
        assert_eq!(f.sleep_secs(0.0), Some(POLL_WHILE_COLLECTING_SECS));
        f.collector_stopped(Some(Collected::Off), &dbs, 0.5);
        assert_eq!(f.sleep_secs(0.5), Some(0.001), "b is overdue: at once");
        f.start_visit(2, &dbs, 0.5);
        f.no_slot(0.5);
        assert_eq!(f.sleep_secs(0.5), Some(REGISTER_RETRY_SECS));
        f.start_visit(2, &dbs, 5.5);
        f.collector_stopped(Some(Collected::Off), &dbs, 6.0);
        let next = f.sleep_secs(6.0).unwrap();
        assert!((0.9 * HOUR - 6.0..=1.1 * HOUR).contains(&next), "{next}");
    }

    #[test]
    fn a_request_past_its_timeout_is_overdue() {
        let dbs = [db(1, "a")];
        let mut f = fleet(HOUR, &dbs);
        let (oid, _) = visit(&mut f, &dbs, report(), 0.0);
        assert!(!f.send_overdue(oid, 9.0));
        assert!(f.send_overdue(oid, 10.1));
        assert_eq!(f.sleep_secs(1.0), Some(POLL_WHILE_SENDING_SECS));
    }

    #[test]
    fn log_lines_escape_database_names() {
        let dbs = [db(1, "two\nlines")];
        let mut f = fleet(HOUR, &dbs);
        let (oid, _) = visit(&mut f, &dbs, report(), 0.0);
        let lines = logs(&f.answered(oid, Err(SendError::Status(503)), 0.0));
        assert_eq!(lines[0].1, "telemetry report for database \"two\\nlines\" failed: HTTP status 503");
    }

    #[test]
    fn function_usage_is_acknowledged_after_a_2xx_and_only_then() {
        let dbs = [db(1, "a")];
        let usage = Usage { counts: vec![(2147, 5)], dropped: 0, dropped_unattributed: false };
        let with_usage =
            || Collected::Report { level: "basic".into(), report: json!({}), usage: usage.clone() };
        let acknowledged = |actions: &[Action]| {
            actions.iter().find_map(|a| match a {
                Action::Acknowledge { oid, usage } => Some((*oid, usage.clone())),
                _ => None,
            })
        };
        let mut f = fleet(HOUR, &dbs);
        for refused in [SendError::Status(503), SendError::Status(307), SendError::TimedOut(10)] {
            let (oid, _) = visit(&mut f, &dbs, with_usage(), 0.0);
            assert_eq!(acknowledged(&f.answered(oid, Err(refused.clone()), 0.5)), None, "{refused:?}");
            f.set_due(oid, 0.0);
        }
        // A 2xx whose answer is not understood still delivered the report.
        let (oid, _) = visit(&mut f, &dbs, with_usage(), 0.0);
        let actions = f.answered(oid, Err(SendError::Malformed("not JSON".into())), 0.5);
        assert_eq!(acknowledged(&actions), Some((1, usage.clone())));
        f.set_due(oid, 0.0);
        let (oid, _) = visit(&mut f, &dbs, with_usage(), 0.0);
        assert_eq!(acknowledged(&f.answered(oid, Ok(answer("0.1.0")), 0.5)), Some((1, usage.clone())));
        // Nothing to subtract: no action.
        f.set_due(oid, 0.0);
        let (oid, _) = visit(&mut f, &dbs, report(), 0.0);
        assert_eq!(acknowledged(&f.answered(oid, Ok(answer("0.1.0")), 0.5)), None);
    }
}

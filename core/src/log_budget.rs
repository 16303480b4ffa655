//! How often the worker may write to the server log, for the whole cluster: the version
//! line when the answer is first seen or changes, then at most once per interval; a given
//! failure kind at most once an hour (DEBUG1 otherwise); the first success after failures
//! once. A busy cluster with many databases and a broken endpoint must not flood the log.
//!
//! Failures are keyed by their kind (`status 503`, `connect`, `state file`, ...), not by
//! their text, which an endpoint or the network chooses; and kinds not seen for an hour are
//! forgotten, so the memory kept is bounded by the kinds seen within one hour.
#![forbid(unsafe_code)]

use std::collections::HashMap;

/// Same failure reason: at most one LOG line per this many seconds.
pub const FAILURE_LOG_EVERY_SECS: f64 = 3600.0;

/// Remembers what was logged when. Times are Unix seconds.
#[derive(Debug, Default)]
pub struct LogBudget {
    version: Option<(String, f64)>,
    failures: HashMap<String, f64>,
    /// A failure happened since the last success was announced.
    failing: bool,
}

impl LogBudget {
    /// Whether the version line for `latest` should be logged now (and record it if so).
    pub fn version_line(&mut self, latest: &str, now: f64, interval: f64) -> bool {
        let due = match &self.version {
            None => true,
            Some((seen, at)) => seen != latest || now - at >= interval,
        };
        if due {
            self.version = Some((latest.to_string(), now));
        }
        due
    }

    /// Whether a failure of kind `kind` should be logged at LOG now (and record it if so).
    pub fn failure_line(&mut self, kind: &str, now: f64) -> bool {
        self.failing = true;
        self.failures.retain(|_, at| now - *at < FAILURE_LOG_EVERY_SECS);
        let due = !self.failures.contains_key(kind);
        if due {
            self.failures.insert(kind.to_string(), now);
        }
        due
    }

    /// How many failure kinds are remembered.
    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.failures.len()
    }

    /// Whether this success is the first after failures (true once per failing spell).
    pub fn recovery_line(&mut self) -> bool {
        std::mem::take(&mut self.failing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_logged_first_on_change_and_once_per_interval() {
        let mut b = LogBudget::default();
        assert!(b.version_line("2.0.0", 0.0, 100.0));
        assert!(!b.version_line("2.0.0", 50.0, 100.0));
        assert!(b.version_line("2.1.0", 60.0, 100.0));
        assert!(!b.version_line("2.1.0", 159.0, 100.0));
        assert!(b.version_line("2.1.0", 160.0, 100.0));
    }

    #[test]
    fn the_same_failure_reason_is_logged_once_an_hour() {
        let mut b = LogBudget::default();
        assert!(b.failure_line("HTTP status 503", 0.0));
        assert!(!b.failure_line("HTTP status 503", 10.0));
        assert!(b.failure_line("HTTP status 500", 10.0));
        assert!(b.failure_line("HTTP status 503", 3600.0));
    }

    #[test]
    fn kinds_older_than_an_hour_are_forgotten() {
        let mut b = LogBudget::default();
        for code in 0..500u16 {
            b.failure_line(&format!("status {code}"), f64::from(code));
        }
        assert_eq!(b.remembered(), 500);
        assert!(b.failure_line("connect", 10_000.0));
        assert_eq!(b.remembered(), 1);
    }

    #[test]
    fn the_first_success_after_failures_is_announced_once() {
        let mut b = LogBudget::default();
        assert!(!b.recovery_line());
        b.failure_line("HTTP status 503", 0.0);
        b.failure_line("HTTP status 503", 1.0);
        assert!(b.recovery_line());
        assert!(!b.recovery_line());
    }
}

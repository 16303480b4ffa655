//! When a database's next report is due: the interval with ±10 % jitter, exponential backoff
//! after failures, and resuming the schedule after a restart. Times are Unix seconds.
#![forbid(unsafe_code)]

/// First retry after a failure; doubled after each further failure, up to the interval.
const FIRST_RETRY_SECS: f64 = 60.0;
/// Jitter is ± this fraction of the delay, so that many servers do not report in step.
const JITTER: f64 = 0.10;

/// A small xorshift generator: jitter needs spread, not secrecy.
#[derive(Clone, Debug)]
pub struct Jitter(u64);

impl Jitter {
    /// A generator seeded from `seed` (any value; 0 is remapped).
    pub fn new(seed: u64) -> Jitter {
        Jitter(seed | 1)
    }

    /// A value in [-1, 1].
    pub fn draw(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
}

fn jittered(delay: f64, jitter: f64) -> f64 {
    delay * (1.0 + JITTER * jitter.clamp(-1.0, 1.0))
}

/// Next attempt after a success (or after finding the level `off`): one interval later.
pub fn after_success(now: f64, interval: f64, jitter: f64) -> f64 {
    now + jittered(interval, jitter)
}

/// Next attempt after the `failures`-th failure in a row: min(interval, 60 s·2^(n−1)).
pub fn after_failure(now: f64, interval: f64, failures: u32, jitter: f64) -> f64 {
    let backoff = FIRST_RETRY_SECS * 2f64.powi(failures.saturating_sub(1).min(30) as i32);
    now + jittered(backoff.min(interval), jitter)
}

/// First attempt for a database when the launcher starts: at once, unless its last success
/// is younger than the interval, in which case the rest of the interval is waited out.
pub fn first_attempt(now: f64, interval: f64, last_success: Option<f64>) -> f64 {
    match last_success {
        Some(t) if t <= now && now - t < interval => t + interval,
        _ => now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_waits_one_interval_within_ten_percent() {
        assert_eq!(after_success(1000.0, 100.0, 0.0), 1100.0);
        assert_eq!(after_success(1000.0, 100.0, 1.0), 1110.0);
        assert_eq!(after_success(1000.0, 100.0, -1.0), 1090.0);
    }

    #[test]
    fn failures_back_off_exponentially_up_to_the_interval() {
        let day = 86400.0;
        assert_eq!(after_failure(0.0, day, 1, 0.0), 60.0);
        assert_eq!(after_failure(0.0, day, 2, 0.0), 120.0);
        assert_eq!(after_failure(0.0, day, 5, 0.0), 960.0);
        assert_eq!(after_failure(0.0, day, 40, 0.0), day);
        assert_eq!(after_failure(0.0, 2.0, 1, 0.0), 2.0);
    }

    #[test]
    fn a_recent_success_is_honoured_after_restart() {
        assert_eq!(first_attempt(1000.0, 100.0, Some(950.0)), 1050.0);
        assert_eq!(first_attempt(1000.0, 100.0, Some(800.0)), 1000.0);
        assert_eq!(first_attempt(1000.0, 100.0, None), 1000.0);
        // A clock that went backwards does not postpone the report.
        assert_eq!(first_attempt(1000.0, 100.0, Some(5000.0)), 1000.0);
    }

    #[test]
    fn jitter_stays_in_range_and_varies() {
        let mut j = Jitter::new(42);
        let values: Vec<f64> = (0..1000).map(|_| j.draw()).collect();
        assert!(values.iter().all(|v| (-1.0..=1.0).contains(v)));
        assert!(values.iter().any(|v| *v > 0.5) && values.iter().any(|v| *v < -0.5));
    }
}

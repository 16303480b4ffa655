//! The function-usage table (SPEC §4.1): how often each (database, function) pair was
//! planned, in a fixed number of slots that every backend shares.
//!
//! Lock-free, so that counting never waits: a slot's key is claimed once with a
//! compare-and-swap and never changes again, and counts are atomic additions. An existing
//! pair is found by a few reads and counted by one addition; a new pair takes the first
//! empty slot of its probe sequence. Because keys are never removed, a probe that meets an
//! empty slot knows the pair is absent. The table holds at most `max_pairs` pairs; when it
//! is full a new pair is dropped and the drop is counted for its database (a "mark", kept
//! under the pair (database, 0): no function has oid 0), so that database's report says it
//! is incomplete. Marks have a bound of their own; past it, a drop is counted for nobody in
//! particular and every report says it is incomplete.
//!
//! Reading a database's counts changes nothing. The launcher subtracts exactly what a
//! report carried once the endpoint accepted it, so calls counted meanwhile are kept.
//!
//! Pairs keep their slots until the server restarts (a pair's count may return to 0): the
//! functions a database uses change rarely, and a slot that could be emptied again would
//! need a lock on every lookup.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// The most databases whose drops are counted one by one.
pub(crate) const MAX_MARKS: u64 = 1024;

/// One slot: the pair's key (0: empty) and its count.
#[repr(C)]
#[derive(Default)]
pub(crate) struct Slot {
    key: AtomicU64,
    count: AtomicU64,
}

/// The table's shared counters. All zeros is an empty table.
#[repr(C)]
#[derive(Default)]
pub(crate) struct Header {
    /// Slots holding a (database, function) pair.
    pairs: AtomicU64,
    /// Slots holding a database's mark.
    marks: AtomicU64,
    /// Pairs dropped while the marks were full too.
    dropped_unattributed: AtomicU64,
}

/// The usage of one database's reportable functions: what a report shows and, once
/// accepted, what is subtracted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Usage {
    /// (function oid, times planned), by oid; only counts above zero.
    pub counts: Vec<(u32, u64)>,
    /// New pairs of this database dropped because the table was full.
    pub dropped: u64,
    /// Some pair, of some database, was dropped and could not be attributed.
    #[serde(default)]
    pub dropped_unattributed: bool,
}

impl Usage {
    /// Whether the counts are incomplete (`functions_used_truncated`).
    pub(crate) fn truncated(&self) -> bool {
        self.dropped > 0 || self.dropped_unattributed
    }

    /// Only the functions `keep` accepts (those the report could name); drops are kept.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(u32) -> bool) {
        self.counts.retain(|(func, _)| keep(*func));
    }
}

/// How many slots a table of `max_pairs` pairs has: twice what can be used, so probe
/// sequences stay short, rounded up to a power of two.
pub(crate) fn slot_count(max_pairs: u64) -> usize {
    (2 * (max_pairs + MAX_MARKS)).next_power_of_two() as usize
}

fn key(db: u32, func: u32) -> u64 {
    (u64::from(db) << 32) | u64::from(func)
}

/// The counting table over `header` and `slots` (of [`slot_count`] slots, all zeros when
/// new), which may live in shared memory.
pub(crate) struct Table<'a> {
    header: &'a Header,
    slots: &'a [Slot],
    max_pairs: u64,
}

impl<'a> Table<'a> {
    /// The table in `header` and `slots`; `slots.len()` must be a power of two.
    pub(crate) fn new(header: &'a Header, slots: &'a [Slot], max_pairs: u64) -> Table<'a> {
        assert!(slots.len().is_power_of_two(), "slot count must be a power of two");
        Table { header, slots, max_pairs }
    }

    /// The probe sequence of `key`: every slot once, starting at its hash.
    fn probe(&self, key: u64) -> impl Iterator<Item = &'a Slot> + 'a {
        let slots = self.slots;
        let mask = slots.len() - 1;
        // Fibonacci hashing: the top bits of the product spread consecutive oids well.
        let start = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize & mask;
        (0..slots.len()).map(move |i| &slots[(start + i) & mask])
    }

    /// The slot of `key`, if present.
    fn find(&self, key: u64) -> Option<&'a Slot> {
        for slot in self.probe(key) {
            match slot.key.load(Ordering::Acquire) {
                0 => return None,
                k if k == key => return Some(slot),
                _ => {}
            }
        }
        None
    }

    /// The slot of `key`, claimed if absent and `used` is below `max`.
    fn find_or_claim(&self, key: u64, used: &AtomicU64, max: u64) -> Option<&'a Slot> {
        for slot in self.probe(key) {
            match slot.key.load(Ordering::Acquire) {
                k if k == key => return Some(slot),
                0 => {
                    // Absent (keys are never removed): reserve room, then claim this slot.
                    if used.fetch_add(1, Ordering::Relaxed) >= max {
                        used.fetch_sub(1, Ordering::Relaxed);
                        return None;
                    }
                    match slot.key.compare_exchange(0, key, Ordering::AcqRel, Ordering::Acquire) {
                        Ok(_) => return Some(slot),
                        Err(other) => {
                            used.fetch_sub(1, Ordering::Relaxed);
                            // Another process claimed it, for this pair or another one.
                            if other == key {
                                return Some(slot);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        None
    }

    /// Counts one planning that used `func` in database `db` (both nonzero). Returns false
    /// when the pair was dropped because the table is full.
    pub(crate) fn count(&self, db: u32, func: u32) -> bool {
        debug_assert!(db != 0 && func != 0);
        if let Some(slot) = self.find_or_claim(key(db, func), &self.header.pairs, self.max_pairs) {
            slot.count.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        match self.find_or_claim(key(db, 0), &self.header.marks, MAX_MARKS) {
            Some(mark) => mark.count.fetch_add(1, Ordering::Relaxed),
            None => self.header.dropped_unattributed.fetch_add(1, Ordering::Relaxed),
        };
        false
    }

    /// The current usage of database `db`. Changes nothing.
    pub(crate) fn usage(&self, db: u32) -> Usage {
        let mut usage = Usage {
            dropped_unattributed: self.header.dropped_unattributed.load(Ordering::Relaxed) > 0,
            ..Usage::default()
        };
        for slot in self.slots {
            let k = slot.key.load(Ordering::Acquire);
            if k == 0 || (k >> 32) as u32 != db {
                continue;
            }
            let n = slot.count.load(Ordering::Relaxed);
            match k as u32 {
                0 => usage.dropped = n,
                func if n > 0 => usage.counts.push((func, n)),
                _ => {}
            }
        }
        usage.counts.sort_unstable();
        usage
    }

    /// Subtracts what a report of database `db` carried, once the endpoint accepted it.
    /// Counts added since the report was taken stay.
    pub(crate) fn acknowledge(&self, db: u32, sent: &Usage) {
        let subtract = |slot: &Slot, n: u64| {
            // Never below zero, whatever was handed in.
            let _ =
                slot.count.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| Some(c.saturating_sub(n)));
        };
        for &(func, n) in &sent.counts {
            if let Some(slot) = (func != 0).then(|| self.find(key(db, func))).flatten() {
                subtract(slot, n);
            }
        }
        if sent.dropped > 0 {
            if let Some(mark) = self.find(key(db, 0)) {
                subtract(mark, sent.dropped);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    /// An empty table of `max_pairs` pairs.
    fn storage(max_pairs: u64) -> (Header, Vec<Slot>) {
        (Header::default(), (0..slot_count(max_pairs)).map(|_| Slot::default()).collect())
    }

    #[test]
    fn counts_are_kept_per_database_and_function() {
        let (h, s) = storage(100);
        let t = Table::new(&h, &s, 100);
        for _ in 0..3 {
            assert!(t.count(1, 65));
        }
        t.count(1, 66);
        t.count(2, 65);
        assert_eq!(t.usage(1), Usage { counts: vec![(65, 3), (66, 1)], ..Usage::default() });
        assert_eq!(t.usage(2).counts, vec![(65, 1)]);
        assert_eq!(t.usage(3), Usage::default());
    }

    #[test]
    fn reading_usage_resets_nothing() {
        let (h, s) = storage(100);
        let t = Table::new(&h, &s, 100);
        t.count(1, 65);
        assert_eq!(t.usage(1), t.usage(1));
        assert_eq!(t.usage(1).counts, vec![(65, 1)]);
    }

    #[test]
    fn acknowledging_one_database_leaves_the_others_alone() {
        let (h, s) = storage(100);
        let t = Table::new(&h, &s, 100);
        t.count(1, 65);
        t.count(2, 65);
        t.acknowledge(1, &t.usage(1));
        assert!(t.usage(1).counts.is_empty());
        assert_eq!(t.usage(2).counts, vec![(65, 1)]);
    }

    #[test]
    fn calls_counted_while_a_report_is_in_flight_are_kept() {
        let (h, s) = storage(100);
        let t = Table::new(&h, &s, 100);
        t.count(1, 65);
        t.count(1, 65);
        let sent = t.usage(1);
        t.count(1, 65);
        t.count(1, 70);
        t.acknowledge(1, &sent);
        assert_eq!(t.usage(1).counts, vec![(65, 1), (70, 1)]);
    }

    #[test]
    fn a_full_table_drops_new_pairs_and_says_so_for_their_database_only() {
        let (h, s) = storage(2);
        let t = Table::new(&h, &s, 2);
        assert!(t.count(1, 65));
        assert!(t.count(2, 65));
        assert!(!t.count(1, 66), "a third pair does not fit");
        assert!(t.count(1, 65), "existing pairs still count");
        let u1 = t.usage(1);
        assert_eq!(u1.counts, vec![(65, 2)]);
        assert!(u1.truncated());
        assert!(!t.usage(2).truncated());
        // Once the report that said so is accepted, the mark is gone.
        t.acknowledge(1, &u1);
        assert!(!t.usage(1).truncated());
    }

    #[test]
    fn drops_beyond_the_marks_make_every_report_truncated() {
        let (h, s) = storage(1);
        let t = Table::new(&h, &s, 1);
        t.count(1, 65);
        for db in 2..(2 + MAX_MARKS as u32) {
            assert!(!t.count(db, 65));
        }
        assert!(!t.usage(1).truncated(), "no drop for database 1 yet");
        assert!(!t.count(5000, 65), "no mark left for this database");
        assert!(t.usage(1).truncated());
        assert!(t.usage(5000).truncated());
    }

    #[test]
    fn colliding_keys_probe_past_each_other_until_every_slot_is_taken() {
        // Eight slots for eight pairs: probe sequences collide and wrap around.
        let h = Header::default();
        let s: Vec<Slot> = (0..8).map(|_| Slot::default()).collect();
        let t = Table::new(&h, &s, 8);
        for f in 1..=8u32 {
            for _ in 0..f {
                assert!(t.count(7, f));
            }
        }
        assert_eq!(t.usage(7).counts, (1..=8).map(|f| (f, u64::from(f))).collect::<Vec<_>>());
        // No slot left, not even for a mark: the drop still shows.
        assert!(!t.count(7, 9));
        assert!(t.usage(7).truncated());
    }

    #[test]
    fn acknowledging_more_than_is_counted_stops_at_zero() {
        let (h, s) = storage(10);
        let t = Table::new(&h, &s, 10);
        t.count(1, 65);
        t.acknowledge(1, &Usage { counts: vec![(65, 5), (99, 1)], dropped: 3, dropped_unattributed: false });
        assert!(t.usage(1).counts.is_empty());
    }

    #[test]
    fn concurrent_counting_is_exact() {
        let (h, s) = storage(1000);
        let t = Table::new(&h, &s, 1000);
        let per_thread = 20_000u64;
        thread::scope(|scope| {
            for i in 0..8u32 {
                let t = &t;
                scope.spawn(move || {
                    for n in 0..per_thread {
                        // Every thread races to claim the same new pairs.
                        t.count(1 + (i % 2), 100 + (n % 50) as u32);
                    }
                });
            }
        });
        for db in [1, 2] {
            let usage = t.usage(db);
            assert_eq!(usage.counts.len(), 50, "each pair claimed exactly once");
            assert_eq!(usage.counts.iter().map(|(_, c)| c).sum::<u64>(), 4 * per_thread);
        }
        assert_eq!(h.pairs.load(Ordering::Relaxed), 100);
    }

    #[test]
    fn concurrent_counting_and_acknowledging_lose_nothing() {
        let (h, s) = storage(100);
        let t = Table::new(&h, &s, 100);
        let per_thread = 50_000u64;
        let acknowledged = thread::scope(|scope| {
            for _ in 0..4 {
                let t = &t;
                scope.spawn(move || (0..per_thread).for_each(|_| drop(t.count(1, 65))));
            }
            let t = &t;
            scope
                .spawn(move || {
                    let mut total = 0;
                    for _ in 0..200 {
                        let sent = t.usage(1);
                        total += sent.counts.iter().map(|(_, c)| c).sum::<u64>();
                        t.acknowledge(1, &sent);
                    }
                    total
                })
                .join()
                .unwrap()
        });
        let left: u64 = t.usage(1).counts.iter().map(|(_, c)| c).sum();
        assert_eq!(acknowledged + left, 4 * per_thread);
    }
}

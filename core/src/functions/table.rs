//! The function-usage table (SPEC §4.1): how often each (database, function) pair was
//! planned, in a fixed number of slots that every backend shares.
//!
//! Lock-free, so that counting never waits: a slot's key is claimed with a compare-and-swap
//! and counts are atomic additions. An existing pair is found by a few reads and counted by
//! one addition; a new pair takes the first free slot of its probe sequence. The table holds
//! at most `max_pairs` pairs; when it is full a new pair is dropped and the drop is counted
//! for its database (a "mark", kept under the pair (database, 0): no function has oid 0),
//! so that database's report says it is incomplete. Marks have a bound of their own; past
//! it, a drop is counted for nobody in particular and every report says it is incomplete.
//!
//! Reading a database's counts changes nothing. The launcher subtracts exactly what a
//! report carried once the endpoint accepted it, so calls counted meanwhile are kept.
//!
//! No role can fill the table for good: the launcher gives back ([`Table::reclaim`]) the
//! slots of databases that are gone or no longer have the extension, and, once the table is
//! three-quarters full, those of pairs whose counts were all accepted (count 0). A slot
//! given back becomes a *tombstone*: a probe goes on past it (so the pairs behind it stay
//! found), and a new pair may take it. Two processes claiming the same new pair at once may
//! then each take a slot for it; every reader therefore adds up all slots of a pair, and an
//! acknowledgement subtracts from them in turn, so a duplicate costs a slot, never a count.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// The most databases whose drops are counted one by one.
pub const MAX_MARKS: u64 = 1024;

/// One slot: the pair's key (0: empty) and its count.
#[repr(C)]
#[derive(Default)]
pub struct Slot {
    key: AtomicU64,
    count: AtomicU64,
}

/// The table's shared counters. All zeros is an empty table.
#[repr(C)]
#[derive(Default)]
pub struct Header {
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
pub struct Usage {
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
    pub fn truncated(&self) -> bool {
        self.dropped > 0 || self.dropped_unattributed
    }

    /// Only the functions `keep` accepts (those the report could name); drops are kept.
    pub fn retain(&mut self, mut keep: impl FnMut(u32) -> bool) {
        self.counts.retain(|(func, _)| keep(*func));
    }
}

/// How many slots a table of `max_pairs` pairs has: twice what can be used, so probe
/// sequences stay short, rounded up to a power of two.
pub fn slot_count(max_pairs: u64) -> usize {
    (2 * (max_pairs + MAX_MARKS)).next_power_of_two() as usize
}

/// The key of a slot given back: probes pass it, claims may take it.
const TOMBSTONE: u64 = u64::MAX;
/// The key of a slot being given back: probes pass it, nobody may take it yet.
const RETIRING: u64 = u64::MAX - 1;

/// A slot's count word: a generation in the high bits, moved on each time the slot is given
/// back, and the count in the low [`COUNT_BITS`]. An addition checks the generation, so an
/// addition that found the slot before it was given back can never land in the count of
/// the pair that takes the slot next.
const COUNT_BITS: u32 = 48;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

impl Slot {
    /// The count, without the generation.
    fn count(&self) -> u64 {
        self.count.load(Ordering::Acquire) & COUNT_MASK
    }

    /// The slot's key and count, read as one: `None` if the slot was given back (and perhaps
    /// taken by another pair) between the two reads.
    fn snapshot(&self) -> Option<(u64, u64)> {
        let word = self.count.load(Ordering::Acquire);
        let key = self.key.load(Ordering::Acquire);
        let again = self.count.load(Ordering::Acquire);
        (again >> COUNT_BITS == word >> COUNT_BITS).then_some((key, again & COUNT_MASK))
    }

    /// Adds `n` to the count of `key`; false when the slot no longer holds `key`.
    fn add(&self, key: u64, n: u64) -> bool {
        let mut word = self.count.load(Ordering::Acquire);
        loop {
            // Read after the word: a slot given back since has moved the word on, and the
            // exchange below fails.
            if self.key.load(Ordering::Acquire) != key {
                return false;
            }
            let new = (word & !COUNT_MASK) | ((word & COUNT_MASK) + n).min(COUNT_MASK);
            match self.count.compare_exchange_weak(word, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return true,
                Err(now) => word = now,
            }
        }
    }

    /// Takes up to `n` from the count; returns how much it took.
    fn subtract(&self, n: u64) -> u64 {
        let before = self
            .count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                Some((w & !COUNT_MASK) | (w & COUNT_MASK).saturating_sub(n))
            })
            .unwrap_or(0);
        (before & COUNT_MASK).min(n)
    }

    /// Moves the count word to the next generation at zero; returns the count it had.
    fn retire(&self) -> u64 {
        let before = self
            .count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                Some(((w >> COUNT_BITS).wrapping_add(1) << COUNT_BITS) & !COUNT_MASK)
            })
            .unwrap_or(0);
        before & COUNT_MASK
    }
}

/// A table at least this full (in quarters) gives back the pairs whose counts are all
/// accepted.
const RECLAIM_ZERO_COUNTS_AT_QUARTERS: u64 = 3;

fn key(db: u32, func: u32) -> u64 {
    (u64::from(db) << 32) | u64::from(func)
}

/// The counting table over `header` and `slots` (of [`slot_count`] slots, all zeros when
/// new), which may live in shared memory.
pub struct Table<'a> {
    header: &'a Header,
    slots: &'a [Slot],
    max_pairs: u64,
}

impl<'a> Table<'a> {
    /// The table in `header` and `slots`; `slots.len()` must be a power of two.
    pub fn new(header: &'a Header, slots: &'a [Slot], max_pairs: u64) -> Table<'a> {
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

    /// The slots holding `key` (usually one; see the module's note on duplicates).
    fn find_all(&self, key: u64) -> impl Iterator<Item = &'a Slot> + 'a {
        self.probe(key)
            .take_while(|slot| slot.key.load(Ordering::Acquire) != 0)
            .filter(move |slot| slot.key.load(Ordering::Acquire) == key)
    }

    /// The slot of `key`, claimed if absent and `used` is below `max`.
    fn find_or_claim(&self, key: u64, used: &AtomicU64, max: u64) -> Option<&'a Slot> {
        let mut tombstone = None;
        for slot in self.probe(key) {
            match slot.key.load(Ordering::Acquire) {
                k if k == key => return Some(slot),
                TOMBSTONE => {
                    tombstone.get_or_insert(slot);
                }
                RETIRING => {}
                0 => {
                    return match tombstone {
                        Some(t) => self.claim(key, t, TOMBSTONE, used, max),
                        None => self.claim(key, slot, 0, used, max),
                    }
                }
                _ => {}
            }
        }
        // No empty slot left: only tombstones can take a new pair.
        tombstone.and_then(|slot| self.claim(key, slot, TOMBSTONE, used, max))
    }

    /// Claims `slot`, whose key was `free` (empty or a tombstone), for `key`, room allowing.
    /// Failing the race for it, the slot of whoever won is used if it is for `key`; a lost
    /// race for another key tries the probe sequence again.
    fn claim(&self, key: u64, slot: &'a Slot, free: u64, used: &AtomicU64, max: u64) -> Option<&'a Slot> {
        if used.fetch_add(1, Ordering::Relaxed) >= max {
            used.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        match slot.key.compare_exchange(free, key, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => Some(slot),
            Err(other) => {
                used.fetch_sub(1, Ordering::Relaxed);
                if other == key {
                    Some(slot)
                } else {
                    self.find_or_claim(key, used, max)
                }
            }
        }
    }

    /// Counts one planning that used `func` in database `db` (both nonzero). Returns false
    /// when the pair was dropped because the table is full.
    pub fn count(&self, db: u32, func: u32) -> bool {
        debug_assert!(db != 0 && func != 0);
        if self.add(key(db, func), &self.header.pairs, self.max_pairs, 1) {
            return true;
        }
        self.count_drop(db);
        false
    }

    /// Counts a dropped pair for database `db` (or for nobody, when the marks are full).
    fn count_drop(&self, db: u32) {
        if !self.add(key(db, 0), &self.header.marks, MAX_MARKS, 1) {
            self.header.dropped_unattributed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Adds `n` to the pair `key`, claiming a slot for it if needed; false when there is no
    /// room. (A slot given back between the lookup and the addition is looked up again.)
    fn add(&self, key: u64, used: &AtomicU64, max: u64, n: u64) -> bool {
        loop {
            match self.find_or_claim(key, used, max) {
                None => return false,
                Some(slot) if slot.add(key, n) => return true,
                Some(_) => {}
            }
        }
    }

    /// The current usage of database `db`. Changes nothing.
    pub fn usage(&self, db: u32) -> Usage {
        let mut usage = Usage {
            dropped_unattributed: self.header.dropped_unattributed.load(Ordering::Relaxed) > 0,
            ..Usage::default()
        };
        for slot in self.slots {
            let Some((k, n)) = slot.snapshot() else { continue };
            if k == 0 || k == TOMBSTONE || k == RETIRING || (k >> 32) as u32 != db {
                continue;
            }
            match k as u32 {
                0 => usage.dropped += n,
                func if n > 0 => usage.counts.push((func, n)),
                _ => {}
            }
        }
        usage.counts.sort_unstable();
        // A pair in two slots (see the module's note) is one pair.
        usage.counts.dedup_by(|later, first| {
            let same = later.0 == first.0;
            if same {
                first.1 += later.1;
            }
            same
        });
        usage
    }

    /// Subtracts what a report of database `db` carried, once the endpoint accepted it.
    /// Counts added since the report was taken stay.
    pub fn acknowledge(&self, db: u32, sent: &Usage) {
        // From each slot of the pair in turn, never below zero, whatever was handed in.
        let subtract = |k: u64, mut n: u64| {
            for slot in self.find_all(k) {
                if n == 0 {
                    break;
                }
                n -= slot.subtract(n);
            }
        };
        for &(func, n) in &sent.counts {
            if func != 0 {
                subtract(key(db, func), n);
            }
        }
        if sent.dropped > 0 {
            subtract(key(db, 0), sent.dropped);
        }
    }

    /// Gives back the slots of every database `gone` names (dropped, or without the
    /// extension), and, once the table is three-quarters full, those of databases
    /// `unreported` names (no report carries their counts) and of pairs whose counts were all
    /// accepted. Run by the launcher alone. Returns how many slots it gave back.
    pub fn reclaim(&self, mut gone: impl FnMut(u32) -> bool, mut unreported: impl FnMut(u32) -> bool) -> u64 {
        let filling = |used: &AtomicU64, max: u64| {
            used.load(Ordering::Relaxed) * 4 >= max * RECLAIM_ZERO_COUNTS_AT_QUARTERS
        };
        let (pairs_full, marks_full) =
            (filling(&self.header.pairs, self.max_pairs), filling(&self.header.marks, MAX_MARKS));
        let mut given_back = 0;
        for slot in self.slots {
            let k = slot.key.load(Ordering::Acquire);
            if k == 0 || k == TOMBSTONE || k == RETIRING {
                continue;
            }
            let (db, func) = ((k >> 32) as u32, k as u32);
            let full = if func == 0 { marks_full } else { pairs_full };
            // Counts nobody will report are dropped with the slot; an accepted pair's (0) are
            // kept, should a planning have counted meanwhile.
            let discard = gone(db) || (full && unreported(db));
            let accepted = full && slot.count() == 0;
            if !discard && !accepted {
                continue;
            }
            // Retiring first: nobody takes the slot while its count is moved on, and every
            // addition that found it before fails and looks again.
            if slot.key.compare_exchange(k, RETIRING, Ordering::AcqRel, Ordering::Acquire).is_err() {
                continue;
            }
            // A planning may have counted between the look and the exchange: its count goes
            // back under the pair (unless discarded).
            let late = slot.retire();
            slot.key.store(TOMBSTONE, Ordering::Release);
            let (used, max) = if func == 0 {
                (&self.header.marks, MAX_MARKS)
            } else {
                (&self.header.pairs, self.max_pairs)
            };
            used.fetch_sub(1, Ordering::Relaxed);
            given_back += 1;
            if late > 0 && !discard && !self.add(k, used, max, late) && func != 0 {
                // No room for them again: they are counted as dropped, as any other would be.
                self.count_drop(db);
            }
        }
        self.sweep();
        given_back
    }

    /// Empties the tombstones that no probe needs: one whose next slot is empty (a probe
    /// that reaches it would stop at the next one anyway). Backwards, so a run of them goes
    /// at once. Without this, churn would leave no empty slot, and every lookup of an absent
    /// pair would read the whole table. (A claim racing with this may place a pair a second
    /// time, which readers add up.)
    fn sweep(&self) {
        let mask = self.slots.len() - 1;
        for _ in 0..2 {
            for i in (0..self.slots.len()).rev() {
                let next = &self.slots[(i + 1) & mask];
                if next.key.load(Ordering::Acquire) == 0 {
                    let _ =
                        self.slots[i].key.compare_exchange(TOMBSTONE, 0, Ordering::AcqRel, Ordering::Acquire);
                }
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
    fn a_dropped_database_gives_its_pairs_back_and_a_new_one_counts_again() {
        // The issue: with 40 pairs, one database counted 40 built-ins and was dropped; a new
        // database then counted nothing until restart.
        let (h, s) = storage(40);
        let t = Table::new(&h, &s, 40);
        for f in 1..=40 {
            assert!(t.count(1, f));
        }
        assert!(!t.count(2, 1), "full");
        assert_eq!(t.reclaim(|db| db == 1, |_| false), 40, "database 1's pairs (2 keeps its mark)");
        for f in 1..=40 {
            assert!(t.count(3, f), "function {f} of a new database was dropped");
        }
        assert_eq!(t.usage(3).counts.len(), 40);
        assert!(!t.usage(3).truncated());
        assert!(t.usage(1).counts.is_empty());
    }

    #[test]
    fn a_nearly_full_table_gives_back_pairs_whose_counts_were_accepted() {
        let (h, s) = storage(8);
        let t = Table::new(&h, &s, 8);
        for f in 1..=6 {
            t.count(1, f);
        }
        t.count(2, 7);
        // Below three quarters (6 of 8 is exactly there): nothing of a live database goes.
        let (h2, s2) = storage(8);
        let t2 = Table::new(&h2, &s2, 8);
        t2.count(1, 1);
        t2.acknowledge(1, &t2.usage(1));
        assert_eq!(t2.reclaim(|_| false, |_| false), 0, "a quarter-full table reclaimed");
        // Database 1's report was accepted: its six pairs are at 0 and go; 2's stays.
        t.acknowledge(1, &t.usage(1));
        assert_eq!(t.reclaim(|_| false, |_| false), 6);
        assert_eq!(t.usage(2).counts, vec![(7, 1)]);
        for f in 10..16 {
            assert!(t.count(3, f), "the room given back was not taken");
        }
        // A pair given back and counted again is one pair, found past the tombstones.
        t.count(1, 1);
        assert_eq!(t.usage(1).counts, vec![(1, 1)]);
    }

    #[test]
    fn pairs_behind_a_tombstone_are_still_found_and_duplicates_add_up() {
        // Eight slots, every key in one probe chain: give back the first, keep the rest.
        let h = Header::default();
        let s: Vec<Slot> = (0..8).map(|_| Slot::default()).collect();
        let t = Table::new(&h, &s, 8);
        for f in 1..=8u32 {
            t.count(1, f);
        }
        t.acknowledge(1, &Usage { counts: vec![(1, 1)], ..Usage::default() });
        assert_eq!(t.reclaim(|_| false, |_| false), 1);
        for f in 2..=8u32 {
            assert!(t.count(1, f));
            assert_eq!(t.usage(1).counts.iter().find(|(g, _)| *g == f), Some(&(f, 2)));
        }
        // A duplicate of pair 5 in the freed slot (as a lost race would leave it).
        let free = s.iter().find(|slot| slot.key.load(Ordering::Relaxed) == TOMBSTONE).unwrap();
        free.key.store(key(1, 5), Ordering::Relaxed);
        assert!(free.add(key(1, 5), 3));
        assert_eq!(t.usage(1).counts.iter().find(|(g, _)| *g == 5), Some(&(5, 5)));
        t.acknowledge(1, &Usage { counts: vec![(5, 5)], ..Usage::default() });
        assert!(t.usage(1).counts.iter().all(|(g, _)| *g != 5), "{:?}", t.usage(1));
    }

    #[test]
    fn unreported_usage_is_given_back_only_when_the_table_fills_up() {
        let (h, s) = storage(8);
        let t = Table::new(&h, &s, 8);
        t.count(5, 1);
        assert_eq!(t.reclaim(|_| false, |db| db == 5), 0, "a table far from full gave it back");
        for f in 2..=6 {
            t.count(5, f);
        }
        assert_eq!(t.reclaim(|_| false, |db| db == 5), 6);
        assert!(t.usage(5).counts.is_empty());
    }

    #[test]
    fn churn_never_leaves_the_table_without_empty_slots() {
        // Databases come and go, each counting a few functions: tombstones are emptied
        // again, so an absent pair is still found absent after a short probe.
        let (h, s) = storage(16);
        let t = Table::new(&h, &s, 16);
        for db in 1..2000u32 {
            for f in 1..=8 {
                t.count(db, f);
            }
            t.reclaim(|d| d != db, |_| false);
        }
        let empty = s.iter().filter(|slot| slot.key.load(Ordering::Relaxed) == 0).count();
        assert!(empty >= s.len() / 2, "{empty} empty slots of {}", s.len());
        assert_eq!(t.usage(1999).counts.len(), 8);
    }

    #[test]
    fn counting_while_the_launcher_reclaims_loses_nothing_of_live_pairs() {
        // 70 pairs in a table of 84: past three quarters, so pairs at 0 are given back too.
        let (h, s) = storage(84);
        let t = Table::new(&h, &s, 84);
        let per_thread = 20_000u64;
        thread::scope(|scope| {
            for _ in 0..3 {
                let t = &t;
                scope.spawn(move || {
                    for n in 0..per_thread {
                        t.count(1, 1 + (n % 40) as u32);
                        t.count(9, 1 + (n % 30) as u32);
                    }
                });
            }
            let t = &t;
            scope.spawn(move || {
                for _ in 0..200 {
                    // Database 9 is dropped over and over; database 1 stays.
                    t.reclaim(|db| db == 9, |_| false);
                }
            });
        });
        assert_eq!(t.usage(1).counts.iter().map(|(_, c)| c).sum::<u64>(), 3 * per_thread);
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
                scope.spawn(move || {
                    (0..per_thread).for_each(|_| {
                        t.count(1, 65);
                    })
                });
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

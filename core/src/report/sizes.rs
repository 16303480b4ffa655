//! One pass over a database's files gives every size the report needs.
//!
//! Calling `pg_relation_size` & co. once per relation costs a directory lookup and several
//! `stat` calls per relation (588 ms at 10 000 tables, SPEC §6); `pg_database_size` walks the
//! same files once (128 ms). So we walk once, like `pg_database_size`, and remember each
//! file's size under its relation file node; relation sizes are then hash look-ups.
#![forbid(unsafe_code)]

use std::collections::{HashMap, HashSet};
use std::fs;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::path::Path;

use crate::threads::with_signals_blocked;

/// Where a relation's files live: (tablespace oid, relfilenode).
pub type FileKey = (u32, u32);

/// A hasher for oid keys (FxHash's multiply-rotate): tens of thousands of look-ups per
/// report, where SipHash's protection against crafted keys buys nothing (oids are not
/// chosen by users) and costs a measurable share of the report.
#[derive(Default)]
pub struct OidHasher(u64);

impl Hasher for OidHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        bytes.iter().for_each(|b| self.write_u32(u32::from(*b)));
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(n)).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

/// A map keyed by oids.
pub type OidMap<K, V> = HashMap<K, V, BuildHasherDefault<OidHasher>>;
/// A set of oids.
pub type OidSet<K> = HashSet<K, BuildHasherDefault<OidHasher>>;

/// The sizes found by [`scan_database`].
#[derive(Debug, Default)]
pub struct FileSizes {
    /// What `pg_database_size()` would return: every entry of the database's directories.
    pub total: i64,
    /// Sum of all forks and segments of each permanent or unlogged relation file node.
    pub by_node: OidMap<FileKey, i64>,
}

impl FileSizes {
    /// Sum of the sizes of the given relation file nodes (absent ones count 0, as for a
    /// relation whose file has not been created yet).
    pub fn sum(&self, keys: impl IntoIterator<Item = FileKey>) -> i64 {
        keys.into_iter().map(|k| self.by_node.get(&k).copied().unwrap_or(0)).sum()
    }
}

/// The relfilenode a data file belongs to: `123`, `123.4`, `123_fsm`, `123_vm.1`,
/// `123_init`. Temporary files (`t3_123`) and other entries (`PG_VERSION`,
/// `pg_filenode.map`, `pg_internal.init`) belong to no permanent relation.
pub fn relfilenode_of(file_name: &str) -> Option<u32> {
    let digits = file_name.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let rest = &file_name[digits..];
    let rest = rest
        .strip_prefix("_fsm")
        .or_else(|| rest.strip_prefix("_vm"))
        .or_else(|| rest.strip_prefix("_init"))
        .unwrap_or(rest);
    let segment_ok = rest.is_empty()
        || rest.strip_prefix('.').is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
    if !segment_ok {
        return None;
    }
    file_name[..digits].parse().ok()
}

/// Directories with more entries than this are stat-ed by several threads: the `stat`
/// calls are most of a report's cost on a large database (SPEC §6).
const PARALLEL_FROM: usize = 2048;
/// Entries stat-ed between two calls of the caller's interrupt check: a cancel or a
/// `statement_timeout` is answered within a few milliseconds, as `pg_database_size` does.
const CHECK_EVERY: usize = 1024;
/// The oid of the `pg_default` tablespace, whose files are under `base/`.
pub const DEFAULT_TABLESPACE: u32 = 1663;
/// At most this many threads stat one directory.
const MAX_THREADS: usize = 4;

/// The size of one directory entry; `None` when it vanished since it was listed.
fn entry_size(entry: &fs::DirEntry) -> io::Result<Option<i64>> {
    // stat, like pg_database_size (fstatat on the open directory: no path to build).
    match entry.metadata() {
        Ok(meta) => Ok(Some(meta.len() as i64)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// How many threads stat one large directory: one per CPU, at most [`MAX_THREADS`].
fn stat_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_THREADS)
}

/// Sizes of `entries`, in order, from `threads` threads when there are many.
fn entry_sizes(entries: &[fs::DirEntry], threads: usize) -> io::Result<Vec<Option<i64>>> {
    if entries.len() < PARALLEL_FROM || threads < 2 {
        return entries.iter().map(entry_size).collect();
    }
    let chunk = entries.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = with_signals_blocked(|| {
            entries
                .chunks(chunk)
                .map(|part| {
                    let work = move || part.iter().map(entry_size).collect::<io::Result<Vec<_>>>();
                    // If no thread can be had, this chunk is done here instead.
                    std::thread::Builder::new().spawn_scoped(scope, work).map_err(|_| part)
                })
                .collect()
        });
        let mut sizes = Vec::with_capacity(entries.len());
        for worker in workers {
            let part = match worker {
                Ok(handle) => {
                    handle.join().unwrap_or_else(|_| Err(io::Error::other("stat thread panicked")))?
                }
                Err(part) => part.iter().map(entry_size).collect::<io::Result<Vec<_>>>()?,
            };
            sizes.extend(part);
        }
        Ok(sizes)
    })
}

/// Adds one database directory (`base/<db>` or a tablespace's `<version dir>/<db>`) to `sizes`,
/// counting every entry as `pg_database_size` does: a directory that cannot be opened
/// (missing, or unreadable) and a file removed while we look count 0, as there.
/// `check` runs every [`CHECK_EVERY`] entries, on the calling thread.
fn scan_dir(dir: &Path, tablespace: u32, sizes: &mut FileSizes, check: &mut dyn FnMut()) -> io::Result<()> {
    let Ok(listing) = fs::read_dir(dir) else { return Ok(()) };
    let mut entries = Vec::new();
    for entry in listing {
        entries.push(entry?);
        if entries.len() % CHECK_EVERY == 0 {
            check();
        }
    }
    sizes.by_node.reserve(entries.len());
    // Batches of several threads' worth, so that `check` runs between them.
    for batch in entries.chunks(CHECK_EVERY * MAX_THREADS) {
        check();
        for (entry, len) in batch.iter().zip(entry_sizes(batch, stat_threads())?) {
            let Some(len) = len else { continue };
            sizes.total += len;
            if let Some(node) = entry.file_name().to_str().and_then(relfilenode_of) {
                *sizes.by_node.entry((tablespace, node)).or_insert(0) += len;
            }
        }
    }
    Ok(())
}

/// Walks the files of database `db_oid` in the data directory `data_dir`: `base/<db>` (the
/// `pg_default` tablespace, whichever tablespace is the database's default) and
/// `pg_tblspc/<spc>/<version_dir>/<db>` for every other tablespace. Files are keyed by the
/// tablespace they are in, so two tablespaces may hold the same relfilenode. `check` is
/// called often on the calling thread (to answer cancels); it may unwind.
pub fn scan_database(
    data_dir: &Path,
    db_oid: u32,
    version_dir: &str,
    check: &mut dyn FnMut(),
) -> io::Result<FileSizes> {
    let mut sizes = FileSizes::default();
    scan_dir(&data_dir.join("base").join(db_oid.to_string()), DEFAULT_TABLESPACE, &mut sizes, check)?;
    let tablespaces = match fs::read_dir(data_dir.join("pg_tblspc")) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(sizes),
        Err(e) => return Err(e),
    };
    for entry in tablespaces {
        let entry = entry?;
        let Some(spc) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let dir = entry.path().join(version_dir).join(db_oid.to_string());
        scan_dir(&dir, spc, &mut sizes, check)?;
    }
    Ok(sizes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relation_file_names_map_to_their_node() {
        assert_eq!(relfilenode_of("16384"), Some(16384));
        assert_eq!(relfilenode_of("16384.2"), Some(16384));
        assert_eq!(relfilenode_of("16384_fsm"), Some(16384));
        assert_eq!(relfilenode_of("16384_vm.1"), Some(16384));
        assert_eq!(relfilenode_of("16384_init"), Some(16384));
    }

    #[test]
    fn other_files_belong_to_no_relation() {
        for name in [
            "PG_VERSION",
            "pg_filenode.map",
            "pg_internal.init",
            "t3_16384",
            "16384_xyz",
            "16384.",
            "16384.a",
        ] {
            assert_eq!(relfilenode_of(name), None, "{name}");
        }
    }

    #[test]
    fn scan_counts_every_file_and_groups_forks_by_node() {
        let root = std::env::temp_dir().join(format!("tt_sizes_{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let db = root.join("base/5");
        fs::create_dir_all(&db).unwrap();
        fs::write(db.join("100"), vec![0u8; 8192]).unwrap();
        fs::write(db.join("100_fsm"), vec![0u8; 100]).unwrap();
        fs::write(db.join("100.1"), vec![0u8; 10]).unwrap();
        fs::write(db.join("PG_VERSION"), b"15\n").unwrap();
        let spc = root.join("pg_tblspc/7000/PG_15_1/5");
        fs::create_dir_all(&spc).unwrap();
        fs::write(spc.join("100"), vec![0u8; 50]).unwrap();

        let sizes = scan_database(&root, 5, "PG_15_1", &mut || {}).unwrap();
        assert_eq!(sizes.by_node[&(1663, 100)], 8192 + 100 + 10);
        assert_eq!(sizes.by_node[&(7000, 100)], 50);
        assert_eq!(sizes.total, 8192 + 100 + 10 + 3 + 50);
        assert_eq!(sizes.sum([(1663, 100), (7000, 100), (1663, 999)]), 8352);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_large_directory_is_summed_the_same_by_several_threads() {
        let root = std::env::temp_dir().join(format!("tt_sizes_many_{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let db = root.join("base/5");
        fs::create_dir_all(&db).unwrap();
        let n = PARALLEL_FROM as u32 + 100;
        for node in 0..n {
            fs::write(db.join(node.to_string()), vec![0u8; (node % 7) as usize]).unwrap();
        }
        let sizes = scan_database(&root, 5, "PG_15_1", &mut || {}).unwrap();
        assert_eq!(sizes.by_node.len(), n as usize);
        assert_eq!(sizes.total, (0..n).map(|node| i64::from(node % 7)).sum::<i64>());
        assert_eq!(sizes.by_node[&(1663, 13)], 6);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn several_threads_give_each_entry_its_own_size_in_order() {
        // Whatever this machine's CPU count: four threads are asked for here.
        let root = std::env::temp_dir().join(format!("tt_sizes_threads_{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        for i in 0..PARALLEL_FROM + 123 {
            fs::write(root.join(i.to_string()), vec![0u8; i % 11]).unwrap();
        }
        let entries: Vec<fs::DirEntry> = fs::read_dir(&root).unwrap().map(Result::unwrap).collect();
        let sizes = entry_sizes(&entries, 4).unwrap();
        for (entry, size) in entries.iter().zip(sizes) {
            let n: usize = entry.file_name().to_str().unwrap().parse().unwrap();
            assert_eq!(size, Some((n % 11) as i64));
        }
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn missing_database_directory_is_empty() {
        let sizes = scan_database(Path::new("/nonexistent-tt"), 1, "PG_15_1", &mut || {}).unwrap();
        assert_eq!(sizes.total, 0);
    }

    #[test]
    fn a_database_directory_that_cannot_be_opened_counts_zero_as_in_postgres() {
        let root = std::env::temp_dir().join(format!("tt_sizes_notdir_{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("base")).unwrap();
        // Not a directory: opening it fails (root reads any mode, so no chmod here).
        fs::write(root.join("base/5"), b"x").unwrap();
        let sizes = scan_database(&root, 5, "PG_15_1", &mut || {}).unwrap();
        assert_eq!(sizes.total, 0);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_interrupt_check_runs_during_a_long_walk_and_may_stop_it() {
        let root = std::env::temp_dir().join(format!("tt_sizes_check_{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let db = root.join("base/5");
        fs::create_dir_all(&db).unwrap();
        let n = CHECK_EVERY * MAX_THREADS * 3;
        for node in 0..n {
            fs::write(db.join(node.to_string()), b"").unwrap();
        }
        let mut checks = 0;
        scan_database(&root, 5, "PG_15_1", &mut || checks += 1).unwrap();
        assert!(checks >= 6, "{checks} checks for {n} entries");
        // A check that unwinds (as a cancel does) ends the walk at once.
        let mut seen = 0;
        let stopped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            scan_database(&root, 5, "PG_15_1", &mut || {
                seen += 1;
                if seen == 2 {
                    panic!("canceled");
                }
            })
        }));
        assert!(stopped.is_err());
        assert_eq!(seen, 2);
        fs::remove_dir_all(&root).unwrap();
    }
}

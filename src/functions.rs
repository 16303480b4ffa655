//! Function usage (SPEC §4.1): how often each database's queries use built-in functions and
//! those of the related extensions, counted by a planner hook into a table in shared memory,
//! shown by `get_telemetry_report()` and subtracted by the launcher once a report carrying
//! them was accepted.
//!
//! The table itself (`table`) and the naming rules (`names`) are plain Rust, in core/; this file only
//! places the table in shared memory, and `hook` counts into it. Without
//! shared_preload_libraries there is no table: nothing is counted and the key is `{}`.

pub(crate) mod hook;
pub(crate) use timescaledb_telemetry_core::functions::{names, table};

use std::mem::size_of;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use pgrx::prelude::*;

use table::{Header, Slot, Table, Usage};

/// The name of our shared memory segment.
const SEGMENT: &std::ffi::CStr = c"timescaledb_telemetry function usage";

/// The table's memory, once the postmaster has set it up (inherited by every child).
static SHARED: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
/// `timescaledb_telemetry.max_tracked_functions` when the library was preloaded (a
/// postmaster setting: the same in every process).
static MAX_PAIRS: AtomicU64 = AtomicU64::new(0);

fn segment_size(max_pairs: u64) -> usize {
    size_of::<Header>() + table::slot_count(max_pairs) * size_of::<Slot>()
}

/// Asks for the shared memory and installs the planner hook. Called from `_PG_init` while
/// shared_preload_libraries is processed.
pub(crate) fn register(max_pairs: u64) {
    MAX_PAIRS.store(max_pairs, Ordering::SeqCst);
    // PostgreSQL 15 moved the request into a hook of its own (shmem_request_hook).
    #[cfg(any(feature = "pg13", feature = "pg14"))]
    // SAFETY: called in the postmaster while libraries are preloaded, as required.
    unsafe {
        pg_sys::RequestAddinShmemSpace(segment_size(max_pairs));
    }
    #[cfg(not(any(feature = "pg13", feature = "pg14")))]
    // SAFETY: hooks are installed once, in the postmaster, before any other process exists.
    unsafe {
        PREVIOUS_REQUEST = pg_sys::shmem_request_hook;
        pg_sys::shmem_request_hook = Some(request);
    }
    // SAFETY: as above.
    unsafe {
        PREVIOUS_STARTUP = pg_sys::shmem_startup_hook;
        pg_sys::shmem_startup_hook = Some(startup);
    }
    hook::install();
}

#[cfg(not(any(feature = "pg13", feature = "pg14")))]
static mut PREVIOUS_REQUEST: pg_sys::shmem_request_hook_type = None;
static mut PREVIOUS_STARTUP: pg_sys::shmem_startup_hook_type = None;

#[cfg(not(any(feature = "pg13", feature = "pg14")))]
#[pg_guard]
unsafe extern "C-unwind" fn request() {
    // SAFETY: the hook chain PostgreSQL documents: call the previous hook, then ask.
    unsafe {
        if let Some(previous) = PREVIOUS_REQUEST {
            pg_sys::submodules::ffi::pg_guard_ffi_boundary(|| previous());
        }
        pg_sys::RequestAddinShmemSpace(segment_size(MAX_PAIRS.load(Ordering::SeqCst)));
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn startup() {
    let size = segment_size(MAX_PAIRS.load(Ordering::SeqCst));
    // SAFETY: run by the postmaster (at start and after a crash) under AddinShmemInitLock,
    // which is MainLWLockArray[21]; the segment is `size` bytes we asked for, zeroed when
    // new: all zeros is an empty table.
    unsafe {
        if let Some(previous) = PREVIOUS_STARTUP {
            pg_sys::submodules::ffi::pg_guard_ffi_boundary(|| previous());
        }
        let lock = &raw mut (*pg_sys::MainLWLockArray.add(21)).lock;
        pg_sys::LWLockAcquire(lock, pg_sys::LWLockMode::LW_EXCLUSIVE);
        let mut found = false;
        let memory = pg_sys::ShmemInitStruct(SEGMENT.as_ptr(), size, &mut found).cast::<u8>();
        if !found {
            std::ptr::write_bytes(memory, 0, size);
        }
        pg_sys::LWLockRelease(lock);
        SHARED.store(memory, Ordering::SeqCst);
    }
}

/// The table, where the library was preloaded.
pub(crate) fn shared_table() -> Option<Table<'static>> {
    let memory = SHARED.load(Ordering::Relaxed);
    if memory.is_null() {
        return None;
    }
    let max_pairs = MAX_PAIRS.load(Ordering::Relaxed);
    // SAFETY: `memory` is the segment set up by `startup`: a Header followed by
    // `slot_count(max_pairs)` slots (Header's size is a multiple of 8, ShmemInitStruct's
    // memory is MAXALIGNed), all atomics; it stays mapped for the life of the process.
    unsafe {
        let header = &*memory.cast::<Header>();
        let slots = std::slice::from_raw_parts(
            memory.add(size_of::<Header>()).cast::<Slot>(),
            table::slot_count(max_pairs),
        );
        Some(Table::new(header, slots, max_pairs))
    }
}

/// The current usage of database `db` (empty without the shared table). Changes nothing.
pub(crate) fn usage(db: u32) -> Usage {
    shared_table().map(|t| t.usage(db)).unwrap_or_default()
}

/// Subtracts a report's usage of database `db`, once the endpoint has accepted it.
pub(crate) fn acknowledge(db: u32, sent: &Usage) {
    if let Some(t) = shared_table() {
        t.acknowledge(db, sent);
    }
}

/// Gives back the usage table's slots of databases that are `gone`, and (when the table is
/// filling up) of `unreported` ones and of pairs whose counts were all accepted. For the
/// launcher.
pub(crate) fn reclaim(gone: impl FnMut(u32) -> bool, unreported: impl FnMut(u32) -> bool) {
    if let Some(t) = shared_table() {
        t.reclaim(gone, unreported);
    }
}

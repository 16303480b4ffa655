//! The planner hook: every planning in a session whose own `timescaledb.telemetry_level` is
//! `basic` counts, once each, the functions its query tree uses (calls, aggregates, window
//! functions, the functions behind operators), in subqueries and CTEs too. Only built-ins
//! and functions of the related extensions are counted (see `names`).
//!
//! Only databases that have the extension count: others would never report their counts,
//! and would fill the table. Whether this backend's database has it is looked up at most
//! once a second.
//!
//! Cheap and harmless by construction: a walk over the query tree the planner is about to
//! read anyway, one atomic addition per distinct function, no lock; whether a non-built-in
//! function belongs to a related extension is looked up once per backend and cached. It
//! raises no error of its own and always hands the query on to the previous hook (or the
//! standard planner) unchanged.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::time::{Duration, Instant};

use pgrx::prelude::*;

use super::names;
use crate::settings::{TelemetryLevel, TELEMETRY_LEVEL};

static mut PREVIOUS: pg_sys::planner_hook_type = None;

/// How long this backend trusts its answer to "does my database have the extension?".
const INSTALLED_RECHECK: Duration = Duration::from_secs(1);

/// The most answers `RELATED` keeps; past it, it starts afresh (bounded memory).
const CACHE_LIMIT: usize = 4096;

thread_local! {
    /// Set while this process runs our own queries: they are not the user's usage.
    static SUSPENDED: Cell<bool> = const { Cell::new(false) };
    /// Non-built-in function oid -> whether it belongs to a related extension.
    static RELATED: RefCell<HashMap<u32, bool>> = RefCell::new(HashMap::new());
    static INVALIDATION_REGISTERED: Cell<bool> = const { Cell::new(false) };
    /// Whether this backend's database had the extension, and when that was looked up.
    static INSTALLED: Cell<Option<(Instant, bool)>> = const { Cell::new(None) };
}

/// Chains our planner hook in front of whatever was there. Called once, from `_PG_init`.
pub(crate) fn install() {
    // SAFETY: in the postmaster, while libraries are preloaded: no planning happens yet.
    unsafe {
        PREVIOUS = pg_sys::planner_hook;
        pg_sys::planner_hook = Some(planner);
    }
}

/// Runs `f` with counting off in this process: the report's own queries, and a collector's,
/// are not usage of the database. Counting resumes however `f` ends (an ERROR unwinds).
pub(crate) fn without_counting<R>(f: impl FnOnce() -> R) -> R {
    struct Resume(bool);
    impl Drop for Resume {
        fn drop(&mut self) {
            SUSPENDED.with(|s| s.set(self.0));
        }
    }
    let _resume = Resume(SUSPENDED.with(|s| s.replace(true)));
    f()
}

#[pg_guard]
unsafe extern "C-unwind" fn planner(
    parse: *mut pg_sys::Query,
    query_string: *const c_char,
    cursor_options: c_int,
    bound_params: pg_sys::ParamListInfo,
) -> *mut pg_sys::PlannedStmt {
    if !parse.is_null() && TELEMETRY_LEVEL.get() == TelemetryLevel::Basic && !SUSPENDED.with(Cell::get) {
        // SAFETY: `parse` is the query the planner is given, valid for this call.
        unsafe { count(parse) };
    }
    // SAFETY: the planner hook protocol: pass everything on unchanged.
    unsafe {
        match PREVIOUS {
            Some(previous) => pg_sys::submodules::ffi::pg_guard_ffi_boundary(|| {
                previous(parse, query_string, cursor_options, bound_params)
            }),
            None => pg_sys::standard_planner(parse, query_string, cursor_options, bound_params),
        }
    }
}

/// Counts the functions of `parse` for the current database.
unsafe fn count(parse: *mut pg_sys::Query) {
    let Some(table) = super::shared_table() else { return };
    // SAFETY: set at connection, before any query.
    let db = unsafe { pg_sys::MyDatabaseId }.to_u32();
    if db == 0 {
        return;
    }
    if !extension_installed() {
        return;
    }
    let mut found: Vec<u32> = Vec::new();
    // SAFETY: the walker only reads the tree (and `found`, passed as the context).
    unsafe { walker(parse.cast(), (&raw mut found).cast()) };
    found.sort_unstable();
    found.dedup();
    for func in found {
        if names::is_builtin(func) || related(func) {
            table.count(db, func);
        }
    }
}

/// Collects the function oids of a query tree into the `Vec<u32>` behind `context`.
#[pg_guard]
unsafe extern "C-unwind" fn walker(node: *mut pg_sys::Node, context: *mut c_void) -> bool {
    if node.is_null() {
        return false;
    }
    // SAFETY: `node` is a node of the tree being walked, so its tag tells its type, and
    // `context` is the Vec given by `count`.
    unsafe {
        let found = &mut *context.cast::<Vec<u32>>();
        match (*node).type_ {
            pg_sys::NodeTag::T_Query => {
                return pg_sys::query_tree_walker(node.cast(), Some(walker), context, 0);
            }
            pg_sys::NodeTag::T_FuncExpr => found.push((*node.cast::<pg_sys::FuncExpr>()).funcid.to_u32()),
            pg_sys::NodeTag::T_Aggref => found.push((*node.cast::<pg_sys::Aggref>()).aggfnoid.to_u32()),
            pg_sys::NodeTag::T_WindowFunc => found.push((*node.cast::<pg_sys::WindowFunc>()).winfnoid.to_u32()),
            // DistinctExpr and NullIfExpr are OpExprs.
            pg_sys::NodeTag::T_OpExpr | pg_sys::NodeTag::T_DistinctExpr | pg_sys::NodeTag::T_NullIfExpr => {
                let op = node.cast::<pg_sys::OpExpr>();
                found.push(operator_function((*op).opfuncid, (*op).opno));
            }
            pg_sys::NodeTag::T_ScalarArrayOpExpr => {
                let op = node.cast::<pg_sys::ScalarArrayOpExpr>();
                found.push(operator_function((*op).opfuncid, (*op).opno));
            }
            _ => {}
        }
        pg_sys::expression_tree_walker(node, Some(walker), context)
    }
}

/// The function behind an operator: filled in by the parser only sometimes.
unsafe fn operator_function(opfuncid: pg_sys::Oid, opno: pg_sys::Oid) -> u32 {
    if opfuncid != pg_sys::InvalidOid {
        return opfuncid.to_u32();
    }
    // SAFETY: a syscache lookup, inside the planning transaction; 0 when not found.
    unsafe { pg_sys::get_opcode(opno) }.to_u32()
}

/// Whether the current database has the extension (rechecked once a second).
fn extension_installed() -> bool {
    let now = Instant::now();
    if let Some((at, installed)) = INSTALLED.with(Cell::get) {
        if now.duration_since(at) < INSTALLED_RECHECK {
            return installed;
        }
    }
    // SAFETY: an index lookup in pg_extension, inside the planning transaction; missing_ok.
    let installed = unsafe { pg_sys::get_extension_oid(c"timescaledb_telemetry".as_ptr(), true) } != pg_sys::InvalidOid;
    INSTALLED.with(|c| c.set(Some((now, installed))));
    installed
}

/// Whether the non-built-in function `func` belongs to a related extension (cached).
fn related(func: u32) -> bool {
    if func == 0 {
        return false;
    }
    if let Some(known) = RELATED.with(|cache| cache.borrow().get(&func).copied()) {
        return known;
    }
    register_invalidation();
    // SAFETY: catalog lookups inside the planning transaction; get_extension_name returns
    // a palloc'd NUL-terminated name or NULL.
    let answer = unsafe {
        let extension = pg_sys::getExtensionOfObject(pg_sys::ProcedureRelationId, pg_sys::Oid::from(func));
        if extension == pg_sys::InvalidOid {
            false
        } else {
            let name = pg_sys::get_extension_name(extension);
            !name.is_null() && names::is_related_extension(&CStr::from_ptr(name).to_string_lossy())
        }
    };
    RELATED.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(func, answer);
    });
    answer
}

/// Forgets the cached answers whenever pg_proc changes (a function dropped, its oid reused).
fn register_invalidation() {
    if INVALIDATION_REGISTERED.with(Cell::get) {
        return;
    }
    #[pg_guard]
    unsafe extern "C-unwind" fn forget(_arg: pg_sys::Datum, _cache: c_int, _hash: u32) {
        RELATED.with(|cache| cache.borrow_mut().clear());
    }
    // SAFETY: registers a callback for the life of this backend; it only clears our cache.
    unsafe {
        pg_sys::CacheRegisterSyscacheCallback(
            pg_sys::SysCacheIdentifier::PROCOID as c_int,
            Some(forget),
            pg_sys::Datum::from(0),
        );
    }
    INVALIDATION_REGISTERED.with(|r| r.set(true));
}

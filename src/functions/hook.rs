//! The planner hook: every planning in a session whose own `timescaledb.telemetry_level` is
//! `basic` counts, once each, the functions its query tree uses (calls, aggregates, window
//! functions, the functions behind operators), in subqueries and CTEs too. Only built-ins
//! and functions of the related extensions are counted (see `names`).
//!
//! Only databases that have the extension count: others would never report their counts,
//! and would fill the table. Whether this backend's database has it is looked up at most
//! once a second (of transaction start times).
//!
//! Cheap and harmless by construction: a walk over the query tree the planner is about to
//! read anyway (under one error guard for the whole walk, not one per node: pgrx's guards
//! cost more than the walk itself), one atomic addition per distinct function, no lock.
//! Whether a non-built-in function belongs to a related extension is looked up once per
//! backend and cached. It raises no error of its own and always hands the query on to the
//! previous hook (or the standard planner) unchanged.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr};

use pgrx::prelude::*;

use super::names;
use crate::catalog_scan::name_str;
use crate::encoding;
use crate::settings::{TelemetryLevel, TELEMETRY_LEVEL};

static mut PREVIOUS: pg_sys::planner_hook_type = None;

/// How long (microseconds of transaction start time) this backend trusts its answer to
/// "does my database have the extension?".
const INSTALLED_RECHECK_MICROS: i64 = 1_000_000;

/// The most answers `RELATED` keeps; past it, it starts afresh (bounded memory).
const CACHE_LIMIT: usize = 4096;

thread_local! {
    /// Set while this process runs our own queries: they are not the user's usage.
    static SUSPENDED: Cell<bool> = const { Cell::new(false) };
    /// Non-built-in function oid -> whether it belongs to a related extension.
    static RELATED: RefCell<HashMap<u32, bool>> = RefCell::new(HashMap::new());
    static INVALIDATION_REGISTERED: Cell<bool> = const { Cell::new(false) };
    /// Whether this backend's database had the extension, and the start of the transaction
    /// that looked it up.
    static INSTALLED: Cell<Option<(i64, bool)>> = const { Cell::new(None) };
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
    if db == 0 || !extension_installed() {
        return;
    }
    let mut walk = Walk { found: Vec::with_capacity(16), operators: Vec::new(), depth: 0 };
    // One guard for the whole walk: the walker's frames own nothing, so an ERROR raised
    // inside PostgreSQL's walkers may jump over them to this boundary, which turns it into
    // a Rust panic (and `planner`'s guard back into the ERROR).
    // SAFETY: the walker only reads the tree and writes `walk`.
    unsafe {
        pg_sys::submodules::ffi::pg_guard_ffi_boundary(|| walker(parse.cast(), (&raw mut walk).cast()));
    }
    for opno in walk.operators {
        // SAFETY: a syscache lookup inside the planning transaction; 0 when not found.
        walk.found.push(unsafe { pg_sys::get_opcode(pg_sys::Oid::from(opno)) }.to_u32());
    }
    walk.found.sort_unstable();
    walk.found.dedup();
    for func in walk.found {
        if names::is_builtin(func) || related(func) {
            table.count(db, func);
        }
    }
}

/// What a walk over one query tree collects.
struct Walk {
    /// Function oids.
    found: Vec<u32>,
    /// Operators whose function the parser left unset, looked up after the walk.
    operators: Vec<u32>,
    depth: u32,
}

/// How deep the walk goes: a deeper query (rare and pathological) is counted in part rather
/// than risk PostgreSQL's own stack-depth ERROR inside the walk.
const MAX_DEPTH: u32 = 1000;

// PostgreSQL's tree walkers and stack check, unguarded: called only inside the one guard of
// `count`. PostgreSQL 16 turned the walkers into macros over `*_impl` functions.
unsafe extern "C-unwind" {
    fn stack_is_too_deep() -> bool;
}
#[cfg(any(feature = "pg13", feature = "pg14", feature = "pg15"))]
unsafe extern "C-unwind" {
    #[link_name = "expression_tree_walker"]
    fn expression_walker(node: *mut pg_sys::Node, walker: Walker, context: *mut c_void) -> bool;
    #[link_name = "query_tree_walker"]
    fn query_walker(query: *mut pg_sys::Query, walker: Walker, context: *mut c_void, flags: c_int) -> bool;
}
#[cfg(not(any(feature = "pg13", feature = "pg14", feature = "pg15")))]
unsafe extern "C-unwind" {
    #[link_name = "expression_tree_walker_impl"]
    fn expression_walker(node: *mut pg_sys::Node, walker: Walker, context: *mut c_void) -> bool;
    #[link_name = "query_tree_walker_impl"]
    fn query_walker(query: *mut pg_sys::Query, walker: Walker, context: *mut c_void, flags: c_int) -> bool;
}
type Walker = Option<unsafe extern "C-unwind" fn(*mut pg_sys::Node, *mut c_void) -> bool>;

/// Collects the function oids of a query tree into the [`Walk`] behind `context`. Holds no
/// value with a destructor (see `count`) and calls nothing that can fail but the walkers.
unsafe extern "C-unwind" fn walker(node: *mut pg_sys::Node, context: *mut c_void) -> bool {
    if node.is_null() {
        return false;
    }
    // SAFETY: `node` is a node of the tree being walked, so its tag tells its type, and
    // `context` is the Walk given by `count`.
    unsafe {
        let walk = &mut *context.cast::<Walk>();
        if walk.depth >= MAX_DEPTH || stack_is_too_deep() {
            return true; // stop here
        }
        match (*node).type_ {
            pg_sys::NodeTag::T_Query => {
                walk.depth += 1;
                let stop = query_walker(node.cast(), Some(walker), context, 0);
                walk.depth -= 1;
                return stop;
            }
            pg_sys::NodeTag::T_FuncExpr => {
                walk.found.push((*node.cast::<pg_sys::FuncExpr>()).funcid.to_u32())
            }
            pg_sys::NodeTag::T_Aggref => walk.found.push((*node.cast::<pg_sys::Aggref>()).aggfnoid.to_u32()),
            pg_sys::NodeTag::T_WindowFunc => {
                walk.found.push((*node.cast::<pg_sys::WindowFunc>()).winfnoid.to_u32())
            }
            // DistinctExpr and NullIfExpr are OpExprs.
            pg_sys::NodeTag::T_OpExpr | pg_sys::NodeTag::T_DistinctExpr | pg_sys::NodeTag::T_NullIfExpr => {
                let op = node.cast::<pg_sys::OpExpr>();
                walk.operator((*op).opfuncid, (*op).opno);
            }
            pg_sys::NodeTag::T_ScalarArrayOpExpr => {
                let op = node.cast::<pg_sys::ScalarArrayOpExpr>();
                walk.operator((*op).opfuncid, (*op).opno);
            }
            _ => {}
        }
        walk.depth += 1;
        let stop = expression_walker(node, Some(walker), context);
        walk.depth -= 1;
        stop
    }
}

impl Walk {
    /// An operator's function: set by the parser, or to be looked up after the walk.
    fn operator(&mut self, opfuncid: pg_sys::Oid, opno: pg_sys::Oid) {
        if opfuncid != pg_sys::InvalidOid {
            self.found.push(opfuncid.to_u32());
        } else {
            self.operators.push(opno.to_u32());
        }
    }
}

/// Whether the current database has the extension (rechecked in the first transaction
/// that starts a second or more after the last check: no clock is read here).
fn extension_installed() -> bool {
    // SAFETY: reads the current transaction's start time, a plain variable.
    let now = unsafe { pg_sys::GetCurrentTransactionStartTimestamp() };
    if let Some((at, installed)) = INSTALLED.with(Cell::get) {
        if now >= at && now - at < INSTALLED_RECHECK_MICROS {
            return installed;
        }
    }
    // SAFETY: an index lookup in pg_extension, inside the planning transaction; missing_ok.
    let installed =
        unsafe { pg_sys::get_extension_oid(c"timescaledb_telemetry".as_ptr(), true) } != pg_sys::InvalidOid;
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
    // SAFETY: catalog lookups inside the planning transaction.
    let answer = unsafe {
        extension_of(pg_sys::ProcedureRelationId, pg_sys::Oid::from(func))
            .is_some_and(|extension| names::is_related_extension(&extension))
            && with_row(pg_sys::SysCacheIdentifier::PROCOID, func, |p: &pg_sys::FormData_pg_proc| {
                pg_sys::superuser_arg(p.proowner)
            }) == Some(true)
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

/// The key of function `func` in `functions_used`, as `names::key` writes it, from the
/// syscaches and pg_depend: `None` for a function that is never reported — dropped since
/// it was counted, or neither a built-in nor a related extension's function made by the
/// extension's script (a function a role that is no superuser owns was added by her, with
/// `ALTER EXTENSION … ADD FUNCTION`; a trusted extension's script runs as the bootstrap
/// superuser). For the report, inside its transaction.
///
/// No query (in a collector's fresh backend, planning one cost more than the rest of an
/// empty database's report), and no cache: a few cached catalog lookups per function, read
/// afresh at every report, so `ALTER EXTENSION … DROP FUNCTION` (which changes pg_depend
/// only, and so invalidates nothing) shows at once.
pub(crate) fn key(func: u32) -> Option<String> {
    // SAFETY: a syscache lookup in the report's transaction; pg_proc's row type, whose
    // proargtypes is an oidvector stored in the fixed-size part, read as PostgreSQL's own
    // code reads it (dim1 values), and copied out.
    let (name, owner, arg_types) = unsafe {
        with_row(pg_sys::SysCacheIdentifier::PROCOID, func, |p: &pg_sys::FormData_pg_proc| {
            let args = &p.proargtypes;
            let arg_types = args.values.as_slice(usize::try_from(args.dim1).unwrap_or(0)).to_vec();
            (name_str(&p.proname), p.proowner, arg_types)
        })?
    };
    // SAFETY: catalog lookups, the caller's transaction.
    let extension = unsafe {
        if names::is_builtin(func) || !pg_sys::superuser_arg(owner) {
            None
        } else {
            extension_of(pg_sys::ProcedureRelationId, pg_sys::Oid::from(func))
        }
    };
    let origin = names::origin(func, extension.as_deref())?;
    // SAFETY: catalog lookups, the caller's transaction.
    let arg_types: Vec<Option<String>> = arg_types.into_iter().map(|t| unsafe { type_name(t) }).collect();
    Some(names::key(origin, &name, &arg_types))
}

/// An argument type as a key writes it: a built-in as `format_type()` does (never qualified:
/// pg_catalog is always on the search path), an extension's type as `<extension>.<type>`
/// (`[]` for an array of it), any other `None` (no schema name can appear in a key).
///
/// # Safety
/// Catalog lookups: inside a transaction.
unsafe fn type_name(t: pg_sys::Oid) -> Option<String> {
    if names::is_builtin(t.to_u32()) {
        // SAFETY: returns a palloc'd NUL-terminated string, "???" for an unknown oid.
        let name = unsafe {
            pg_sys::format_type_extended(t, -1, pg_sys::FORMAT_TYPE_ALLOW_INVALID as pg_sys::bits16)
        };
        // SAFETY: as above.
        return Some(encoding::from_database(unsafe { CStr::from_ptr(name) }.to_bytes()));
    }
    // SAFETY: pg_type's row type, fixed-size fields only.
    let base = unsafe {
        with_row(pg_sys::SysCacheIdentifier::TYPEOID, t.to_u32(), |ty: &pg_sys::FormData_pg_type| {
            if ty.typcategory as u8 == b'A' && ty.typelem != pg_sys::InvalidOid {
                ty.typelem
            } else {
                t
            }
        })?
    };
    // SAFETY: as above.
    let base_name = unsafe {
        with_row(pg_sys::SysCacheIdentifier::TYPEOID, base.to_u32(), |ty: &pg_sys::FormData_pg_type| {
            name_str(&ty.typname)
        })?
    };
    // SAFETY: catalog lookups, the caller's transaction.
    let extension = unsafe { extension_of(pg_sys::TypeRelationId, base) }?;
    Some(format!("{extension}.{base_name}{}", if base == t { "" } else { "[]" }))
}

/// The name of the extension that object `object` of catalog `class` belongs to (its
/// pg_depend entry of type 'e'), if any.
///
/// # Safety
/// Catalog lookups: inside a transaction.
unsafe fn extension_of(class: pg_sys::Oid, object: pg_sys::Oid) -> Option<String> {
    // SAFETY: index lookups in pg_depend and pg_extension; get_extension_name returns a
    // palloc'd NUL-terminated name or NULL.
    unsafe {
        let extension = pg_sys::getExtensionOfObject(class, object);
        if extension == pg_sys::InvalidOid {
            return None;
        }
        let name = pg_sys::get_extension_name(extension);
        (!name.is_null()).then(|| encoding::from_database(CStr::from_ptr(name).to_bytes()))
    }
}

/// What `read` makes of the row with oid `oid` in syscache `cache`; `None` when there is
/// none. The row is released before returning.
///
/// # Safety
/// A syscache lookup, inside a transaction; `T` must be the row type of `cache`'s catalog,
/// and `read` may only read its fixed-size part.
unsafe fn with_row<T, R>(
    cache: pg_sys::SysCacheIdentifier::Type,
    oid: u32,
    read: impl FnOnce(&T) -> R,
) -> Option<R> {
    // SAFETY: the caller's promise; the tuple stays pinned until ReleaseSysCache.
    unsafe {
        let tuple = pg_sys::SearchSysCache1(cache as c_int, pg_sys::Datum::from(pg_sys::Oid::from(oid)));
        if tuple.is_null() {
            return None;
        }
        let answer = read(&*pg_sys::heap_tuple_get_struct::<T>(tuple));
        pg_sys::ReleaseSysCache(tuple);
        Some(answer)
    }
}

/// Forgets the cached answers whenever what they were read from changes: pg_proc (a
/// function dropped, its oid reused, its owner changed), pg_authid (its owner no longer a
/// superuser).
fn register_invalidation() {
    if INVALIDATION_REGISTERED.with(Cell::get) {
        return;
    }
    #[pg_guard]
    unsafe extern "C-unwind" fn forget(_arg: pg_sys::Datum, _cache: c_int, _hash: u32) {
        RELATED.with(|cache| cache.borrow_mut().clear());
    }
    for cache in [pg_sys::SysCacheIdentifier::PROCOID, pg_sys::SysCacheIdentifier::AUTHOID] {
        // SAFETY: registers a callback for the life of this backend; it only clears our caches.
        unsafe {
            pg_sys::CacheRegisterSyscacheCallback(cache as c_int, Some(forget), pg_sys::Datum::from(0))
        };
    }
    INVALIDATION_REGISTERED.with(|r| r.set(true));
}

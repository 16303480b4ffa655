//! Reading a system catalog with a plain heap scan, as PostgreSQL's own code does
//! (autovacuum's database list, for instance).
//!
//! Used where SQL cannot go (the launcher is connected to no database) or costs too much:
//! summing relation sizes needs every row of pg_class and pg_index, and at 10 000 tables
//! the executor spends 40 ms filtering and aggregating them into arrays, a third of the
//! whole report; the raw scan takes a few milliseconds.

use pgrx::pg_sys;

/// Calls `each` on the fixed-size part of every visible row of `catalog` (inside the
/// current transaction, with its catalog snapshot) and collects what it returns.
///
/// # Safety
/// `T` must be the `FormData_*` struct of `catalog`, and `each` may only read the fixed-size
/// fields of it (those before the first variable-length column).
pub(crate) unsafe fn scan<T, R>(catalog: pg_sys::Oid, mut each: impl FnMut(&T) -> Option<R>) -> Vec<R> {
    let mut found = Vec::new();
    // SAFETY: the relation is opened, scanned and closed here, inside the caller's
    // transaction; each tuple stays pinned by the scan until the next heap_getnext, and
    // GETSTRUCT (t_data + t_hoff) is where its fixed-size part starts.
    unsafe {
        let rel = pg_sys::table_open(catalog, pg_sys::AccessShareLock as _);
        let scan = pg_sys::table_beginscan_catalog(rel, 0, std::ptr::null_mut());
        loop {
            let tuple = pg_sys::heap_getnext(scan, pg_sys::ScanDirection::ForwardScanDirection);
            if tuple.is_null() {
                break;
            }
            let data = (*tuple).t_data;
            let form = &*((data as *const u8).add((*data).t_hoff as usize) as *const T);
            found.extend(each(form));
        }
        pg_sys::table_endscan(scan);
        pg_sys::table_close(rel, pg_sys::AccessShareLock as _);
    }
    found
}

/// A `name` column's text.
pub(crate) fn name_str(name: &pg_sys::NameData) -> String {
    // SAFETY: NameData is a NUL-terminated string of at most NAMEDATALEN bytes.
    unsafe { std::ffi::CStr::from_ptr(name.data.as_ptr()) }.to_string_lossy().into_owned()
}

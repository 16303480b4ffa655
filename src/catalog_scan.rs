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
    // SAFETY: the caller's promise, passed on; the row is not used.
    unsafe { scan_rows(catalog, |form: &T, _| each(form)) }
}

/// One row of a [`scan_rows`], for reading a variable-length column.
pub(crate) struct Row {
    tuple: *mut pg_sys::HeapTupleData,
    desc: pg_sys::TupleDesc,
}

impl Row {
    /// The bytes of column `attno` (from 1), a `text` column, as stored (in the database's
    /// encoding); `None` when NULL.
    ///
    /// # Safety
    /// Column `attno` of the scanned catalog must be of type `text`.
    pub(crate) unsafe fn text(&self, attno: usize) -> Option<Vec<u8>> {
        use pgrx::FromDatum;
        let attno = std::num::NonZeroUsize::new(attno)?;
        // SAFETY: as in `text_array`: the tuple is pinned while `each` runs, and a text
        // varlena reads as bytes (detoasted in the current memory context, then copied).
        unsafe {
            let datum = pgrx::htup::heap_getattr_raw(self.tuple, attno, self.desc)?;
            <&[u8]>::from_datum(datum, false).map(<[u8]>::to_vec)
        }
    }

    /// What `keep` makes of each element of column `attno` (from 1), a text array, given its
    /// bytes as stored (in the database's encoding: never an error, whatever they hold); empty
    /// when NULL. Only what `keep` returns is copied out of the server's memory.
    ///
    /// # Safety
    /// Column `attno` of the scanned catalog must be of type `text[]`.
    pub(crate) unsafe fn text_array<T>(&self, attno: usize, keep: impl FnMut(&[u8]) -> Option<T>) -> Vec<T> {
        use pgrx::FromDatum;
        let Some(attno) = std::num::NonZeroUsize::new(attno) else { return Vec::new() };
        // SAFETY: the tuple is pinned by the scan while `each` runs and `desc` is its
        // relation's descriptor (see scan_rows); the caller promises the column's type, whose
        // elements are varlenas like bytea's, so they read as bytes (detoasted in the current
        // memory context, freed with the array; `keep` sees them only while it lives).
        unsafe {
            let Some(datum) = pgrx::htup::heap_getattr_raw(self.tuple, attno, self.desc) else {
                return Vec::new();
            };
            let Some(elements) = pgrx::datum::Array::<&[u8]>::from_datum(datum, false) else {
                return Vec::new();
            };
            elements.iter().flatten().filter_map(keep).collect()
        }
    }
}

/// [`scan`], with the row for its variable-length columns.
///
/// # Safety
/// As for [`scan`]; the variable-length columns are read through the [`Row`] only.
pub(crate) unsafe fn scan_rows<T, R>(
    catalog: pg_sys::Oid,
    mut each: impl FnMut(&T, &Row) -> Option<R>,
) -> Vec<R> {
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
            found.extend(each(form, &Row { tuple, desc: (*rel).rd_att }));
        }
        pg_sys::table_endscan(scan);
        pg_sys::table_close(rel, pg_sys::AccessShareLock as _);
    }
    found
}

/// A `name` column's text (in the database's encoding: converted, never an error).
pub(crate) fn name_str(name: &pg_sys::NameData) -> String {
    // SAFETY: NameData is a NUL-terminated string of at most NAMEDATALEN bytes.
    crate::encoding::from_database(unsafe { std::ffi::CStr::from_ptr(name.data.as_ptr()) }.to_bytes())
}

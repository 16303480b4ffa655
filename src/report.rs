//! `get_telemetry_report()`: collect the current database's report, then serialise it.

pub(crate) mod collect;
pub(crate) use timescaledb_telemetry_core::report::{identity, model, relations, sizes, system};

use std::ffi::CString;

use pgrx::prelude::*;

use crate::settings::{Settings, TELEMETRY_LEVEL};

/// The anonymous usage report of the current database, exactly as the worker would send it.
/// It is shown at every level, `off` included (with `functions_used` at the session's level
/// `basic` only); calling it sends nothing and changes nothing.
// Security definer: any role may see the report, but not the metadata table behind it (whose
// rows not flagged for telemetry are nobody else's business); every name it uses is
// schema-qualified and the search path is pinned. Parallel restricted: it runs SPI queries
// and reads the data directory.
#[pg_extern(volatile, parallel_restricted, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn get_telemetry_report() -> ReportJsonb {
    match collect::collect(&Settings::current(), TELEMETRY_LEVEL.get()) {
        Ok(report) => ReportJsonb(report.to_json()),
        Err(e) => {
            ereport!(
                PgLogLevel::ERROR,
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                format!("could not build the telemetry report: {e}")
            );
            unreachable!("ereport(ERROR) does not return")
        }
    }
}

/// The report as a `jsonb` value of this database. pgrx's own `JsonB` hands its UTF-8 text
/// to `jsonb_in` as it is, which reads it in the database's encoding: in a LATIN1 database
/// "Müller" would come out as "MÃ¼ller". This converts the text to the database's encoding
/// first (see `encoding`: never an ERROR; in SQL_ASCII the UTF-8 text is kept as it is).
pub(crate) struct ReportJsonb(pub(crate) serde_json::Value);

pgrx::impl_sql_translatable!(ReportJsonb, "jsonb");

impl IntoDatum for ReportJsonb {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        let text = serde_json::to_string(&self.0).expect("a JSON value serialises");
        // JSON escapes every control character, NUL included, and so do the escapes.
        let text = CString::new(crate::encoding::json_to_database(&text)).expect("JSON text holds no NUL");
        // SAFETY: jsonb_in takes a NUL-terminated string in the database's encoding, which
        // `text` is and which outlives the call.
        unsafe {
            pgrx::direct_function_call_as_datum(pg_sys::jsonb_in, &[Some(pg_sys::Datum::from(text.as_ptr()))])
        }
    }

    fn type_oid() -> pg_sys::Oid {
        pg_sys::JSONBOID
    }
}

// SAFETY: as pgrx does for its own JsonB: the datum (or NULL) is returned to the caller.
unsafe impl pgrx::callconv::BoxRet for ReportJsonb {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut pgrx::callconv::FcInfo<'fcx>) -> pgrx::datum::Datum<'fcx> {
        match self.into_datum() {
            // SAFETY: a jsonb datum made in the function's own memory context.
            Some(datum) => unsafe { fcinfo.return_raw_datum(datum) },
            None => fcinfo.return_null(),
        }
    }
}

//! `get_telemetry_report()`: collect the current database's report, then serialise it.

pub(crate) mod collect;
pub(crate) mod identity;
pub(crate) mod model;
pub(crate) mod relations;
pub(crate) mod sizes;
pub(crate) mod system;

use pgrx::prelude::*;
use pgrx::JsonB;

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
fn get_telemetry_report() -> JsonB {
    match collect::collect(&Settings::current(), TELEMETRY_LEVEL.get()) {
        Ok(report) => JsonB(report.to_json()),
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

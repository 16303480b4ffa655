//! Every setting (GUC) of SPEC §2: the statics, their registration, and [`Settings::current`],
//! which reads them once into a plain value that the rest of the code passes around.
//!
//! `GucSetting::get` must run on the backend's main thread; reading everything here, once per
//! report or cycle, keeps threads and pure modules away from PostgreSQL.

use std::ffi::{c_char, c_void, CStr, CString};

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting, PostgresGucEnum};
use pgrx::{pg_guard, pg_sys};

use crate::signature::TrustedKeys;

/// The endpoint reports go to when nobody configured one.
pub(crate) const DEFAULT_ENDPOINT: &CStr = c"https://telemetry.timescale.com/v1/metrics";

/// How much the server tells the endpoint (`timescaledb.telemetry_level`).
#[derive(PostgresGucEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TelemetryLevel {
    /// Nothing is sent and no version check happens.
    #[name = c"off"]
    Off,
    /// Kept for TimescaleDB compatibility; here the same as `basic`.
    #[name = c"no_functions"]
    NoFunctions,
    /// The full anonymous report.
    #[name = c"basic"]
    Basic,
}

impl TelemetryLevel {
    /// The name as `SHOW` prints it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TelemetryLevel::Off => "off",
            TelemetryLevel::NoFunctions => "no_functions",
            TelemetryLevel::Basic => "basic",
        }
    }

    /// Parses a value the way PostgreSQL matches enum GUCs (case-insensitively).
    pub(crate) fn parse(value: &str) -> Option<Self> {
        [Self::Off, Self::NoFunctions, Self::Basic]
            .into_iter()
            .find(|level| level.as_str().eq_ignore_ascii_case(value.trim()))
    }
}

/// Which TimescaleDB license the report claims (`timescaledb.license`).
#[derive(PostgresGucEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum License {
    #[name = c"apache"]
    Apache,
    #[name = c"timescale"]
    Timescale,
}

pub(crate) static TELEMETRY_LEVEL: GucSetting<TelemetryLevel> =
    GucSetting::<TelemetryLevel>::new(TelemetryLevel::Basic);
static LICENSE: GucSetting<License> = GucSetting::<License>::new(License::Timescale);
static LAST_TUNED: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static LAST_TUNED_VERSION: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static ENDPOINT: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(DEFAULT_ENDPOINT));
static INTERVAL_SECS: GucSetting<i32> = GucSetting::<i32>::new(24 * 60 * 60);
static TIMEOUT_SECS: GucSetting<i32> = GucSetting::<i32>::new(10);
/// Size of the function-usage table in shared memory (SPEC §4.1): (database, function) pairs.
static MAX_TRACKED_FUNCTIONS: GucSetting<i32> = GucSetting::<i32>::new(10_000);
static CLOUD: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static TRUSTED_KEYS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

/// A snapshot of the settings, taken on the main thread. (The level is not in it: which
/// level governs a database is decided per database, see `level.rs`.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Settings {
    pub license: License,
    pub last_tuned: Option<String>,
    pub last_tuned_version: Option<String>,
    pub endpoint: String,
    pub interval_secs: u64,
    pub timeout_secs: u64,
    pub cloud: Option<String>,
    /// `timescaledb_telemetry.trusted_keys` (checked when set: it parses).
    pub trusted_keys: TrustedKeys,
}

impl Settings {
    /// Reads every GUC of this extension as the current process sees it.
    pub(crate) fn current() -> Settings {
        Settings {
            license: LICENSE.get(),
            last_tuned: string_value(&LAST_TUNED),
            last_tuned_version: string_value(&LAST_TUNED_VERSION),
            endpoint: string_value(&ENDPOINT)
                .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string_lossy().into_owned()),
            interval_secs: INTERVAL_SECS.get().max(1) as u64,
            timeout_secs: TIMEOUT_SECS.get().max(1) as u64,
            cloud: string_value(&CLOUD),
            trusted_keys: TrustedKeys::in_force(string_value(&TRUSTED_KEYS).as_deref()),
        }
    }
}

/// An unset or empty string GUC is "not set" (RESET and `= ''` both mean that to an operator).
fn string_value(setting: &GucSetting<Option<CString>>) -> Option<String> {
    setting.get().map(|s| s.to_string_lossy().into_owned()).filter(|s| !s.is_empty())
}

/// GUC check hook for `timescaledb_telemetry.endpoint`: refuse anything but an http/https
/// URL or an absolute file:/// directory.
#[pg_guard]
unsafe extern "C-unwind" fn check_endpoint(
    newval: *mut *mut c_char,
    _extra: *mut *mut c_void,
    _source: pg_sys::GucSource::Type,
) -> bool {
    // SAFETY: PostgreSQL passes a valid pointer to the candidate value (NULL when unset).
    unsafe {
        check_string(
            newval,
            crate::http::endpoint_problem,
            c"Use a URL such as https://telemetry.example.com/v1/metrics, or file:///absolute/directory.",
        )
    }
}

/// GUC check hook for `timescaledb_telemetry.trusted_keys`: minisign public keys only.
#[pg_guard]
unsafe extern "C-unwind" fn check_trusted_keys(
    newval: *mut *mut c_char,
    _extra: *mut *mut c_void,
    source: pg_sys::GucSource::Type,
) -> bool {
    // The postmaster reading its configuration file (at start or reload): refusing would
    // leave the default, no key, and so turn the check off. The value is kept instead: it
    // trusts no key (Settings: TrustedKeys::in_force) and no answer is used until it is
    // fixed. Everywhere else (ALTER SYSTEM, a backend's reload) it is refused as usual.
    // SAFETY: reading a flag PostgreSQL sets at process start.
    let postmaster_file = source == pg_sys::GucSource::PGC_S_FILE && !unsafe { pg_sys::IsUnderPostmaster };
    // SAFETY: PostgreSQL passes a valid pointer to the candidate value (NULL when unset).
    unsafe {
        check_string(
            newval,
            |value| match TrustedKeys::parse(value) {
                Err(why) if postmaster_file => {
                    pgrx::warning!(
                        "timescaledb_telemetry.trusted_keys does not parse, so no answer will be used: {why}"
                    );
                    None
                }
                result => result.err(),
            },
            c"Give the base64 line of each minisign .pub file, separated by commas.",
        )
    }
}

/// A string check hook's work: `problem` says why a value is refused; PostgreSQL then
/// reports "invalid value for parameter" with that DETAIL and `hint`.
///
/// # Safety
/// `newval` is the pointer a check hook receives.
unsafe fn check_string(
    newval: *mut *mut c_char,
    problem: impl Fn(&str) -> Option<String>,
    hint: &CStr,
) -> bool {
    // SAFETY: PostgreSQL passes a valid pointer to the candidate value (NULL when unset).
    let value = unsafe {
        if newval.is_null() || (*newval).is_null() {
            return true;
        }
        CStr::from_ptr(*newval).to_string_lossy().into_owned()
    };
    match problem(&value) {
        None => true,
        Some(detail) => {
            let detail = CString::new(detail).unwrap_or_default();
            // SAFETY: these are PostgreSQL's documented check-hook error slots; pstrdup copies
            // the message into the current memory context, which outlives the hook's caller.
            unsafe {
                pg_sys::GUC_check_errcode(pgrx::PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE as i32);
                pg_sys::GUC_check_errdetail_string = pg_sys::pstrdup(detail.as_ptr());
                pg_sys::GUC_check_errhint_string = pg_sys::pstrdup(hint.as_ptr());
            }
            false
        }
    }
}

/// Registers every GUC. Called once from `_PG_init`.
pub(crate) fn register() {
    GucRegistry::define_enum_guc(
        c"timescaledb.telemetry_level",
        c"Level used to determine which telemetry to send",
        c"off sends nothing and does no version check; no_functions and basic send the anonymous report.",
        &TELEMETRY_LEVEL,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_enum_guc(
        c"timescaledb.license",
        c"TimescaleDB license type reported in telemetry",
        c"apache is reported as apache_only, timescale as community.",
        &LICENSE,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"timescaledb.last_tuned",
        c"Records last time timescaledb-tune ran",
        c"",
        &LAST_TUNED,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"timescaledb.last_tuned_version",
        c"Version of timescaledb-tune used to tune",
        c"",
        &LAST_TUNED_VERSION,
        GucContext::Sighup,
        GucFlags::default(),
    );
    // SAFETY: check_endpoint is #[pg_guard]ed, so a panic in it becomes a PostgreSQL ERROR.
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            c"timescaledb_telemetry.endpoint",
            c"URL the telemetry report is sent to",
            c"An http or https URL, or file:///directory for an air-gapped server (no network).",
            &ENDPOINT,
            GucContext::Sighup,
            GucFlags::SUPERUSER_ONLY,
            Some(check_endpoint),
            None,
            None,
        );
    }
    // SAFETY: check_trusted_keys is #[pg_guard]ed, so a panic in it becomes a PostgreSQL ERROR.
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            c"timescaledb_telemetry.trusted_keys",
            c"minisign public keys an answer must be signed with",
            c"Empty: answers are used unsigned. Several keys are separated by commas.",
            &TRUSTED_KEYS,
            GucContext::Sighup,
            GucFlags::SUPERUSER_ONLY,
            Some(check_trusted_keys),
            None,
            None,
        );
    }
    GucRegistry::define_int_guc(
        c"timescaledb_telemetry.interval",
        c"Time between two telemetry reports of a database",
        c"",
        &INTERVAL_SECS,
        1,
        i32::MAX,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"timescaledb_telemetry.timeout",
        c"Upper bound for one telemetry request (connect, send and read)",
        c"",
        &TIMEOUT_SECS,
        1,
        3600,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_string_guc(
        c"timescaledb_telemetry.cloud",
        c"Cloud provider reported as instance_metadata.cloud",
        c"",
        &CLOUD,
        GucContext::Sighup,
        GucFlags::default(),
    );
    // A postmaster setting can only be made while libraries are preloaded; without the
    // preload there is no usage table for it to size.
    // SAFETY: a plain read of a flag PostgreSQL sets before loading libraries.
    if unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        GucRegistry::define_int_guc(
            c"timescaledb_telemetry.max_tracked_functions",
            c"Number of (database, function) pairs whose use is counted for telemetry",
            c"When the table is full, new pairs are not counted and reports say functions_used_truncated.",
            &MAX_TRACKED_FUNCTIONS,
            1,
            10_000_000,
            GucContext::Postmaster,
            GucFlags::default(),
        );
    }
    // SAFETY: called from _PG_init after our GUCs exist; it only removes placeholders.
    // Never reserve "timescaledb": a real TimescaleDB's placeholders would be wiped.
    // PostgreSQL 15 added reserved prefixes; 14 can only warn about existing placeholders.
    #[cfg(not(any(feature = "pg13", feature = "pg14")))]
    unsafe {
        pg_sys::MarkGUCPrefixReserved(c"timescaledb_telemetry".as_ptr())
    };
    #[cfg(any(feature = "pg13", feature = "pg14"))]
    unsafe {
        pg_sys::EmitWarningsOnPlaceholders(c"timescaledb_telemetry".as_ptr())
    };
}

/// `timescaledb_telemetry.max_tracked_functions` (fixed from server start).
pub(crate) fn max_tracked_functions() -> u64 {
    MAX_TRACKED_FUNCTIONS.get().max(1) as u64
}

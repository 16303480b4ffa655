-- 0.3.0 -> 0.4.0: the version check that protects (SPEC §9). Three functions, defined as a
-- fresh install of 0.4.0 defines them (tests/upgrade.rs compares the two): the advisories
-- affecting the installed version, for pg_monitor; what was sent, for superusers, as the
-- status. No row is touched; the advisories and the history live in the worker's state file.
CREATE  FUNCTION "get_telemetry_advisories"() RETURNS TABLE (
	"id" TEXT,  /* String */
	"aliases" TEXT[],  /* Vec < String > */
	"severity" TEXT,  /* String */
	"summary" TEXT,  /* String */
	"fixed_in" TEXT,  /* Option < String > */
	"url" TEXT,  /* Option < String > */
	"first_seen" timestamp with time zone  /* TimestampWithTimeZone */
)
STRICT VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'get_telemetry_advisories_wrapper';

CREATE  FUNCTION "get_telemetry_history"() RETURNS TABLE (
	"at" timestamp with time zone,  /* TimestampWithTimeZone */
	"ok" bool,  /* bool */
	"status" INT,  /* Option < i32 > */
	"error" TEXT,  /* Option < String > */
	"bytes" bigint,  /* Option < i64 > */
	"sha256" TEXT,  /* Option < String > */
	"ms" bigint  /* Option < i64 > */
)
STRICT VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'get_telemetry_history_wrapper';

CREATE  FUNCTION "get_telemetry_last_sent"() RETURNS jsonb /* Option < ReportJsonb > */
STRICT VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'get_telemetry_last_sent_wrapper';

REVOKE ALL ON FUNCTION get_telemetry_advisories() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION get_telemetry_advisories() TO pg_monitor;
REVOKE ALL ON FUNCTION get_telemetry_history() FROM PUBLIC;
REVOKE ALL ON FUNCTION get_telemetry_last_sent() FROM PUBLIC;

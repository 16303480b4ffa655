//! The extension's pure logic: every rule that needs no server, unit-tested without one
//! (`cargo test -p timescaledb_telemetry_core`, once for all PostgreSQL majors). Nothing here
//! imports pgrx or calls PostgreSQL; the extension crate (the repository's root) is the glue
//! that does, and re-exports these modules where its own code expects them.
//!
//! Every module carries `#![forbid(unsafe_code)]` but `threads`, whose one `unsafe` block
//! changes a thread's signal mask.

pub mod advisory;
pub mod fleet;
pub mod functions;
pub mod handover;
pub mod http;
pub mod level;
pub mod log_budget;
pub mod related;
pub mod report;
pub mod schedule;
pub mod session;
pub mod signature;
pub mod state;
pub mod threads;
pub mod version;

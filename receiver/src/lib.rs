//! The receiver: a service an organisation runs for its own fleet (SPEC §10). Its servers'
//! `timescaledb_telemetry.endpoint` points here; it stores every report in PostgreSQL, answers
//! each with the manifest it serves (signed), and shows the fleet on a page.
//!
//! Vocabulary:
//! - a **report** is what one database's worker POSTs (`report`: what we read of it and what
//!   we refuse);
//! - the **manifest** is the answer: the current version and OSV advisories the operator
//!   configured, signed with the receiver's minisign key (`manifest`);
//! - the **store** is the PostgreSQL database holding every report, partitioned by day, and
//!   the latest one per database (`store`, schema in `migrations/`);
//! - the **fleet** is what the page says about the stored reports: who reports, which
//!   versions, who is out of date or affected, who grows (`fleet`, `chart`);
//! - the **web** part is the axum router, its handlers and its one error type (`web`), served
//!   by a bounded connection loop (`server`).
//!
//! Pure modules (`report`, `manifest`, `fleet`, `chart`, `config`) forbid unsafe code and are
//! unit-tested without a server; `store` and `web` are tested against a real PostgreSQL by the
//! repository's integration tests (tests/receiver.rs), which run the binary.
#![forbid(unsafe_code)]

pub mod chart;
pub mod config;
pub mod fleet;
pub mod manifest;
pub mod report;
pub mod server;
pub mod store;
pub mod web;

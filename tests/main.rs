//! The integration tests: real PostgreSQL clusters of the major under test, the installed
//! extension, a real local endpoint (SPEC §7). One module per concern; `common` is the
//! harness. Run by tests/run, which builds and installs the extension for one major first.

mod common;

mod catalog;
mod faults;
mod functions;
mod package;
mod receiver;
mod report;
mod report_keys;
mod security;
mod settings;
mod transport;
mod upgrade;
mod version_check;
mod worker;

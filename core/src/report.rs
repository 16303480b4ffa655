//! The report as data (`model`) and the pure parts of collecting it: relation counts and
//! sizes, the walk over the database's files, system facts, which uuid a copy reports.

pub mod identity;
pub mod model;
pub mod relations;
pub mod sizes;
pub mod system;

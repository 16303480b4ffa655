//! Function usage (SPEC §4.1), the pure parts: the fixed-capacity table of counts and the
//! naming rules.

pub mod names;
pub mod table;

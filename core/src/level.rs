//! Which telemetry level governs a database's report: the one a session of the extension's
//! owner would get on connecting to it. PostgreSQL applies, from weakest to strongest:
//! the configuration file (and ALTER SYSTEM), `ALTER ROLE ALL SET`, `ALTER DATABASE d SET`,
//! `ALTER ROLE owner SET`, `ALTER ROLE owner IN DATABASE d SET`.
#![forbid(unsafe_code)]

/// One row of `pg_db_role_setting` that applies to (database, owner).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleSetting {
    /// `setdatabase` is this database (not 0).
    pub for_database: bool,
    /// `setrole` is the owner (not 0).
    pub for_role: bool,
    /// `setconfig` entries, `name=value`.
    pub config: Vec<String>,
}

impl RoleSetting {
    /// PostgreSQL's precedence of the source (higher wins).
    fn precedence(&self) -> u8 {
        match (self.for_database, self.for_role) {
            (true, true) => 4,
            (false, true) => 3,
            (true, false) => 2,
            (false, false) => 1,
        }
    }
}

/// The value of setting `name` in effect: the strongest row that sets it to a value `valid`
/// accepts, else `file_value`. Invalid values are skipped, as PostgreSQL does at connection
/// time (with a WARNING), and names compare case-insensitively, as GUC names do.
pub fn in_effect(name: &str, file_value: &str, rows: &[RoleSetting], valid: impl Fn(&str) -> bool) -> String {
    let mut rows: Vec<&RoleSetting> = rows.iter().collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.precedence()));
    rows.iter()
        .find_map(|row| {
            row.config.iter().rev().find_map(|entry| {
                let (key, value) = entry.split_once('=')?;
                (key.trim().eq_ignore_ascii_case(name) && valid(value)).then(|| value.to_string())
            })
        })
        .unwrap_or_else(|| file_value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "timescaledb.telemetry_level";

    fn row(for_database: bool, for_role: bool, value: &str) -> RoleSetting {
        RoleSetting { for_database, for_role, config: vec!["work_mem=4MB".into(), format!("{NAME}={value}")] }
    }

    fn level(rows: &[RoleSetting]) -> String {
        in_effect(NAME, "basic", rows, |v| ["off", "basic", "no_functions"].contains(&v))
    }

    #[test]
    fn the_configuration_file_applies_when_nothing_overrides_it() {
        assert_eq!(level(&[]), "basic");
    }

    #[test]
    fn database_beats_file_role_beats_database_role_in_database_beats_all() {
        assert_eq!(level(&[row(false, false, "no_functions")]), "no_functions");
        assert_eq!(level(&[row(true, false, "off"), row(false, false, "no_functions")]), "off");
        assert_eq!(level(&[row(true, false, "off"), row(false, true, "basic")]), "basic");
        assert_eq!(
            level(&[row(false, true, "basic"), row(true, true, "off"), row(true, false, "basic")]),
            "off"
        );
    }

    #[test]
    fn invalid_values_are_skipped() {
        assert_eq!(level(&[row(true, true, "loud"), row(true, false, "off")]), "off");
    }

    #[test]
    fn names_match_case_insensitively_and_others_are_ignored() {
        let rows = [RoleSetting {
            for_database: true,
            for_role: false,
            config: vec!["TimescaleDB.Telemetry_Level=off".into()],
        }];
        assert_eq!(level(&rows), "off");
        let rows = [RoleSetting {
            for_database: true,
            for_role: false,
            config: vec!["timescaledb.license=apache".into()],
        }];
        assert_eq!(level(&rows), "basic");
    }
}

//! Configuration, from the environment (one variable per setting, so a service manager's
//! unit file or a container's env holds it all). Every value is checked at start: a receiver
//! that cannot serve as configured does not start.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;

/// What the receiver runs with. The variables, with their defaults:
/// - `RECEIVER_DATABASE_URL` (required): the store, a libpq connection string or URL;
/// - `RECEIVER_MANIFEST` (required): the JSON file answered to every report;
/// - `RECEIVER_PAGE_TOKEN` (required, at least 16 of `[A-Za-z0-9._~-]`): reading the page
///   and `/api/`;
/// - `RECEIVER_SECRET_KEY`: a minisign secret key without a password, to sign answers;
/// - `RECEIVER_LISTEN` (`127.0.0.1:8080`): the address to listen on;
/// - `RECEIVER_RETENTION_DAYS` (`90`, 1–3650): days of reports kept (whole days dropped);
/// - `RECEIVER_POOL_SIZE` (`16`, 1–256): connections to the store.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub database_url: String,
    pub manifest: PathBuf,
    pub page_token: String,
    pub secret_key: Option<PathBuf>,
    pub listen: SocketAddr,
    pub retention_days: u32,
    pub pool_size: usize,
}

/// Shortest page token accepted.
pub const MIN_TOKEN_LEN: usize = 16;

impl Config {
    /// Reads the configuration through `var` (the process environment in `main`).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let required =
            |name: &str| var(name).filter(|v| !v.is_empty()).ok_or_else(|| format!("{name} is not set"));
        let page_token = required("RECEIVER_PAGE_TOKEN")?;
        if page_token.chars().count() < MIN_TOKEN_LEN {
            return Err(format!("RECEIVER_PAGE_TOKEN is shorter than {MIN_TOKEN_LEN} characters"));
        }
        // It travels in a cookie and a header: letters, digits, `-`, `_`, `.` and `~` only.
        if !page_token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b)) {
            return Err("RECEIVER_PAGE_TOKEN may hold only letters, digits, -, _, . and ~".to_string());
        }
        let number =
            |name: &str, default: u64, range: std::ops::RangeInclusive<u64>| match var(name)
                .filter(|v| !v.is_empty())
            {
                None => Ok(default),
                Some(v) => v.parse::<u64>().ok().filter(|n| range.contains(n)).ok_or_else(|| {
                    format!("{name} must be a number from {} to {}", range.start(), range.end())
                }),
            };
        let listen = var("RECEIVER_LISTEN").filter(|v| !v.is_empty()).unwrap_or("127.0.0.1:8080".into());
        Ok(Config {
            database_url: required("RECEIVER_DATABASE_URL")?,
            manifest: required("RECEIVER_MANIFEST")?.into(),
            page_token,
            secret_key: var("RECEIVER_SECRET_KEY").filter(|v| !v.is_empty()).map(PathBuf::from),
            listen: listen
                .parse()
                .map_err(|_| format!("RECEIVER_LISTEN is not an address and port: {listen}"))?,
            retention_days: number("RECEIVER_RETENTION_DAYS", 90, 1..=3650)? as u32,
            pool_size: number("RECEIVER_POOL_SIZE", 16, 1..=256)? as usize,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    const BASE: [(&str, &str); 3] = [
        ("RECEIVER_DATABASE_URL", "host=/tmp dbname=fleet"),
        ("RECEIVER_MANIFEST", "/etc/receiver/manifest.json"),
        ("RECEIVER_PAGE_TOKEN", "0123456789abcdef"),
    ];

    #[test]
    fn defaults_fill_what_is_not_set() {
        let c = Config::from_vars(vars(&BASE)).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!((c.retention_days, c.pool_size, c.secret_key), (90, 16, None));
    }

    #[test]
    fn each_bad_value_is_named() {
        for (name, value, want) in [
            ("RECEIVER_PAGE_TOKEN", "short", "shorter than 16"),
            ("RECEIVER_PAGE_TOKEN", "0123456789abcdef; x=1", "only letters, digits"),
            ("RECEIVER_PAGE_TOKEN", "", "RECEIVER_PAGE_TOKEN is not set"),
            ("RECEIVER_LISTEN", "8080", "not an address"),
            ("RECEIVER_RETENTION_DAYS", "0", "from 1 to 3650"),
            ("RECEIVER_POOL_SIZE", "many", "from 1 to 256"),
        ] {
            let mut pairs: Vec<(&str, &str)> = BASE.iter().filter(|(k, _)| *k != name).copied().collect();
            pairs.push((name, value));
            let err = Config::from_vars(vars(&pairs)).unwrap_err();
            assert!(err.contains(want), "{err} for {name}={value}");
        }
        let without: Vec<(&str, &str)> = BASE[1..].to_vec();
        assert!(Config::from_vars(vars(&without)).unwrap_err().contains("RECEIVER_DATABASE_URL"));
    }
}

//! Versions as the endpoint announces them: validation and numeric comparison.
//!
//! `2.19.3` < `2.20.0-rc1` < `2.20.0` < `2.20.0.1`: dotted numeric parts compare as numbers
//! (missing parts count as 0), and a pre-release (anything after `-`) is older than its
//! release. Build metadata (after `+`) is ignored.
#![forbid(unsafe_code)]

use std::cmp::Ordering;

/// Longest version string we accept from an endpoint.
pub const MAX_VERSION_LEN: usize = 64;

/// A validated version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    text: String,
    numbers: Vec<u64>,
    prerelease: Option<String>,
}

impl Version {
    /// Parses a version; `None` when it is empty, longer than 64 characters, contains
    /// anything outside `[0-9A-Za-z.+-]`, or does not start with dotted numbers.
    pub fn parse(text: &str) -> Option<Version> {
        if text.is_empty()
            || text.len() > MAX_VERSION_LEN
            || !text.bytes().all(|b| b.is_ascii_alphanumeric() || b"+.-".contains(&b))
        {
            return None;
        }
        let without_build = text.split('+').next()?;
        let (release, prerelease) = match without_build.split_once('-') {
            Some((release, pre)) if !pre.is_empty() => (release, Some(pre.to_string())),
            Some(_) => return None,
            None => (without_build, None),
        };
        let numbers = release
            .split('.')
            .map(|part| {
                (!part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| part.parse::<u64>().ok())
                    .flatten()
            })
            .collect::<Option<Vec<u64>>>()?;
        Some(Version { text: text.to_string(), numbers, prerelease })
    }

    /// The version as it was given.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

fn compare_prerelease(a: &str, b: &str) -> Ordering {
    // rc2 > rc1, rc10 > rc9: compare the alphabetic prefix, then the trailing number.
    let split = |s: &str| {
        let digits = s.len() - s.bytes().rev().take_while(u8::is_ascii_digit).count();
        (s[..digits].to_ascii_lowercase(), s[digits..].parse::<u64>().unwrap_or(0))
    };
    split(a).cmp(&split(b))
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let len = self.numbers.len().max(other.numbers.len());
        for i in 0..len {
            let a = self.numbers.get(i).copied().unwrap_or(0);
            let b = other.numbers.get(i).copied().unwrap_or(0);
            match a.cmp(&b) {
                Ordering::Equal => continue,
                unequal => return unequal,
            }
        }
        match (&self.prerelease, &other.prerelease) {
            (None, None) => Ordering::Equal,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(a), Some(b)) => compare_prerelease(a, b),
        }
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn parts_compare_as_numbers_not_text() {
        assert!(v("2.10.0") > v("2.9.9"));
        assert!(v("10.0") > v("9.99.99"));
    }

    #[test]
    fn missing_parts_count_as_zero() {
        assert_eq!(v("2.1").cmp(&v("2.1.0")), Ordering::Equal);
        assert!(v("2.1.0.1") > v("2.1"));
    }

    #[test]
    fn version_with_prerelease_is_older_than_release() {
        assert!(v("2.20.0-rc1") < v("2.20.0"));
        assert!(v("2.20.0-rc1") > v("2.19.3"));
        assert!(v("2.20.0-rc2") > v("2.20.0-rc1"));
        assert!(v("2.20.0-rc10") > v("2.20.0-rc9"));
    }

    #[test]
    fn build_metadata_is_ignored_in_comparison() {
        assert_eq!(v("1.2.3+debian1").cmp(&v("1.2.3")), Ordering::Equal);
    }

    #[test]
    fn invalid_versions_are_refused() {
        let long = "1.".repeat(40);
        for bad in [
            "",
            "abc",
            "1..2",
            "1.2.",
            "1.2.3-",
            "1.2 3",
            "1.2;rm",
            "1.2.3\n",
            "１.２",
            long.as_str(),
            "-1.2",
        ] {
            assert_eq!(Version::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn sixty_four_characters_are_accepted_sixty_five_are_not() {
        let ok = format!("1.{}", "0".repeat(62));
        assert_eq!(ok.len(), 64);
        assert!(Version::parse(&ok).is_some());
        assert!(Version::parse(&format!("{ok}0")).is_none());
    }
}

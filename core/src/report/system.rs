//! Facts about the host (uname, /etc/os-release) and about the build.
#![forbid(unsafe_code)]

use std::fs;

use super::model::SystemFacts;

/// `PRETTY_NAME` from the text of an os-release file, unquoted (os-release(5) allows
/// double quotes, single quotes or none, with backslash escapes inside quotes).
pub fn pretty_name(os_release: &str) -> Option<String> {
    os_release.lines().find_map(|line| {
        let value = line.trim().strip_prefix("PRETTY_NAME=")?;
        let value = unquote(value.trim());
        (!value.is_empty()).then_some(value)
    })
}

fn unquote(value: &str) -> String {
    let quoted = value.len() >= 2
        && ((value.starts_with('"') && value.ends_with('"'))
            || (value.starts_with('\'') && value.ends_with('\'')));
    if !quoted {
        return value.to_string();
    }
    let inner = &value[1..value.len() - 1];
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

/// uname(2)'s sysname, release and version, which Linux also publishes under
/// /proc/sys/kernel (ostype, osrelease, version): read there without any unsafe call.
fn uname_field(file: &str) -> String {
    fs::read_to_string(format!("/proc/sys/kernel/{file}")).map(|s| s.trim().to_string()).unwrap_or_default()
}

/// The facts about the machine that compiled the extension (its build script reads them).
pub struct Build<'a> {
    pub install_method: &'a str,
    pub os_name: &'a str,
    pub os_version: &'a str,
}

/// Everything the report says about the host and the build.
pub fn facts(build: &Build<'_>) -> SystemFacts {
    // os-release(5): /etc/os-release, falling back to /usr/lib/os-release.
    let os_release = fs::read_to_string("/etc/os-release")
        .or_else(|_| fs::read_to_string("/usr/lib/os-release"))
        .unwrap_or_default();
    SystemFacts {
        os_name: uname_field("ostype"),
        os_release: uname_field("osrelease"),
        os_version: uname_field("version"),
        os_name_pretty: pretty_name(&os_release),
        install_method: build.install_method.to_string(),
        build_architecture: std::env::consts::ARCH.to_string(),
        build_architecture_bit_size: (usize::BITS).to_string(),
        build_os_name: build.os_name.to_string(),
        build_os_version: build.os_version.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_name_in_double_quotes() {
        let text = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(pretty_name(text).as_deref(), Some("Debian GNU/Linux 12 (bookworm)"));
    }

    #[test]
    fn pretty_name_unquoted_or_single_quoted() {
        assert_eq!(pretty_name("PRETTY_NAME=Alpine").as_deref(), Some("Alpine"));
        assert_eq!(pretty_name("PRETTY_NAME='Arch Linux'").as_deref(), Some("Arch Linux"));
    }

    #[test]
    fn pretty_name_with_escapes() {
        assert_eq!(pretty_name(r#"PRETTY_NAME="A \"quoted\" OS""#).as_deref(), Some("A \"quoted\" OS"));
    }

    #[test]
    fn pretty_name_absent_or_empty_is_none() {
        assert_eq!(pretty_name("NAME=x\nID=y\n"), None);
        assert_eq!(pretty_name("PRETTY_NAME=\"\""), None);
    }

    /// The build's facts are the ones given (the extension's build script reads them; the
    /// integration tests compare them with the machine); the rest is this machine's.
    #[test]
    fn build_facts_are_the_ones_given_and_the_host_is_this_machine() {
        let facts = facts(&Build { install_method: "deb", os_name: "Linux", os_version: "6.1.0" });
        assert_eq!(
            (facts.install_method.as_str(), facts.build_os_name.as_str(), facts.build_os_version.as_str()),
            ("deb", "Linux", "6.1.0")
        );
        let kernel =
            |f: &str| fs::read_to_string(format!("/proc/sys/kernel/{f}")).unwrap().trim().to_string();
        assert_eq!(facts.os_name, kernel("ostype"));
        assert_eq!(facts.os_release, kernel("osrelease"));
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            (facts.build_architecture.as_str(), facts.build_architecture_bit_size.as_str()),
            ("x86_64", "64")
        );
    }
}

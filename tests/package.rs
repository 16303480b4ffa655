//! SPEC §8: the Debian package (scripts/build-deb) installs with apt, works, and is removed
//! cleanly. Debian 12 has only PostgreSQL 15, so the package this test can install with
//! its dependency is postgresql-15's.
//!
//! It replaces, for a moment, the files `cargo pgrx install` put in the same places, and puts
//! them back at the end; it is marked ignored, and tests/run runs it alone after the others,
//! so no other test sees the gap.

use crate::common::Cluster;
use std::path::{Path, PathBuf};
use std::process::Command;

const LIB: &str = "/usr/lib/postgresql/15/lib/timescaledb_telemetry.so";
const EXT: &str = "/usr/share/postgresql/15/extension";

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The extension's installed files, saved aside and put back when dropped.
struct Saved(Vec<(PathBuf, Vec<u8>)>);

impl Saved {
    fn take() -> Saved {
        let mut files = vec![PathBuf::from(LIB)];
        for entry in std::fs::read_dir(EXT).unwrap().flatten() {
            if entry.file_name().to_string_lossy().starts_with("timescaledb_telemetry") {
                files.push(entry.path());
            }
        }
        Saved(files.into_iter().map(|p| (p.clone(), std::fs::read(&p).unwrap())).collect())
    }
}

impl Drop for Saved {
    fn drop(&mut self) {
        for (path, bytes) in &self.0 {
            std::fs::write(path, bytes).unwrap();
        }
    }
}

#[test]
#[ignore = "replaces the installed extension for a moment: tests/run runs it alone, after the others"]
fn the_debian_package_installs_with_apt_works_and_is_removed_cleanly() {
    if crate::common::major() != 15 {
        eprintln!("skipped: Debian 12 has the server of PostgreSQL 15 only");
        return;
    }
    let deb =
        sh(Command::new("bash").arg("scripts/build-deb").env("PG", "15").current_dir(crate::common::REPO));
    let deb = Path::new(crate::common::REPO).join(deb);
    let name = format!("postgresql-15-timescaledb-telemetry_{}_amd64.deb", env!("CARGO_PKG_VERSION"));
    assert!(deb.ends_with(&name), "{}", deb.display());
    let _saved = Saved::take();
    sh(Command::new("apt-get")
        .args(["install", "-y", "-qq"])
        .arg(&deb)
        .env("DEBIAN_FRONTEND", "noninteractive"));
    let listed = sh(Command::new("dpkg").args(["-L", "postgresql-15-timescaledb-telemetry"]));
    assert!(listed.lines().any(|l| l == LIB), "{listed}");
    assert!(listed.lines().any(|l| l == format!("{EXT}/timescaledb_telemetry.control")), "{listed}");

    // The packaged files are the ones a server uses.
    let c = Cluster::preloaded("");
    c.create_db_with_extension("app");
    assert!(c.report("app")["db_uuid"].is_string());
    drop(c);

    sh(Command::new("apt-get")
        .args(["remove", "-y", "-qq", "postgresql-15-timescaledb-telemetry"])
        .env("DEBIAN_FRONTEND", "noninteractive"));
    for line in listed.lines().filter(|l| l.contains("timescaledb_telemetry")) {
        assert!(!Path::new(line).exists(), "{line} is left after removal");
    }
    let status = Command::new("dpkg").args(["-s", "postgresql-15-timescaledb-telemetry"]).output().unwrap();
    assert!(!status.status.success(), "the package is still known to dpkg");
}

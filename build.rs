//! Captures the build facts the report carries (`build_os_name`, `build_os_version`,
//! `install_method`): they describe the machine that compiled the library, so they must be
//! read here, at build time, not at run time.
use std::fs;

fn kernel_fact(file: &str, fallback: &str) -> String {
    fs::read_to_string(format!("/proc/sys/kernel/{file}"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| fallback.to_string())
}

fn main() {
    println!("cargo:rerun-if-env-changed=TIMESCALEDB_TELEMETRY_INSTALL_METHOD");
    println!("cargo:rerun-if-changed=build.rs");
    let install_method = std::env::var("TIMESCALEDB_TELEMETRY_INSTALL_METHOD")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "source".to_string());
    // /proc/sys/kernel/{ostype,osrelease} are uname(2)'s sysname and release.
    let os_name = kernel_fact("ostype", std::env::consts::OS);
    let os_version = kernel_fact("osrelease", "unknown");
    println!("cargo:rustc-env=TT_INSTALL_METHOD={install_method}");
    println!("cargo:rustc-env=TT_BUILD_OS_NAME={os_name}");
    println!("cargo:rustc-env=TT_BUILD_OS_VERSION={os_version}");
}

//! How reports travel: TLS verified against the trust store, proxies from the environment.

use crate::common::endpoint::{Answer, Endpoint};
use crate::common::{wait_until, Cluster};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const SOON: Duration = Duration::from_secs(15);

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A test CA and a certificate it signed for 127.0.0.1; returns (ca.crt, server.crt, server.key).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=timescaledb_telemetry test CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
    for f in ["ca.crt", "server.crt", "server.key"] {
        Command::new("chmod").arg("644").arg(dir.join(f)).status().unwrap();
    }
    (dir.join("ca.crt"), dir.join("server.crt"), dir.join("server.key"))
}

/// The HTTPS endpoint of tests/tls_endpoint.py; killed on drop.
struct TlsEndpoint {
    child: Child,
    port: u16,
    served: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl TlsEndpoint {
    fn start(cert: &Path, key: &Path) -> TlsEndpoint {
        let mut child = Command::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tls_endpoint.py"))
            .arg(cert)
            .arg(key)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let port = lines.next().unwrap().unwrap().trim().parse().unwrap();
        let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = served.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if line == "served" {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
        });
        TlsEndpoint { child, port, served }
    }

    fn served(&self) -> usize {
        self.served.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for TlsEndpoint {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn an_untrusted_certificate_is_refused_and_a_trusted_ca_is_accepted() {
    let dir = std::env::temp_dir().join(format!("tt_tls_{}", std::process::id()));
    let (ca, cert, key) = certificates(&dir);
    let ep = TlsEndpoint::start(&cert, &key);
    let conf = format!(
        "timescaledb_telemetry.endpoint = 'https://127.0.0.1:{}/v1/metrics'\ntimescaledb_telemetry.interval = '1h'",
        ep.port
    );

    // The system trust store does not know our CA: the handshake fails, nothing is served.
    let untrusted = Cluster::preloaded(&conf);
    untrusted.create_db_with_extension("app");
    let failed = "telemetry report for database \"app\" failed: could not connect: ";
    assert!(untrusted.wait_for_log(SOON, |l| l.contains(failed)), "{}", untrusted.server_log());
    assert!(untrusted.server_log().to_lowercase().contains("certificate"), "{}", untrusted.server_log());
    assert_eq!(ep.served(), 0);
    drop(untrusted);

    // A trust store that has the CA (what update-ca-certificates produces): accepted.
    let trusted = Cluster::preloaded_with_env(&conf, &[("SSL_CERT_FILE", ca.to_str().unwrap())]);
    trusted.create_db_with_extension("app");
    assert!(wait_until(SOON, || ep.served() >= 1), "{}", trusted.server_log());
    assert!(trusted.wait_for_log(SOON, |l| l.contains("is up to date")), "{}", trusted.server_log());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn http_proxy_from_the_environment_is_used() {
    let proxy = Endpoint::start(Answer::version("0.1.0"));
    let c = Cluster::preloaded_with_env(
        "timescaledb_telemetry.endpoint = 'http://telemetry.invalid/v1/metrics'\ntimescaledb_telemetry.interval = '1h'",
        &[("HTTP_PROXY", &format!("http://127.0.0.1:{}", proxy.port))],
    );
    c.create_db_with_extension("app");
    assert!(proxy.wait_for(1, SOON), "nothing reached the proxy:\n{}", c.server_log());
    let req = proxy.requests().remove(0);
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "http://telemetry.invalid/v1/metrics");
    assert!(c.wait_for_log(SOON, |l| l.contains("is up to date")), "{}", c.server_log());
}

#[test]
fn no_proxy_bypasses_the_proxy() {
    let direct = Endpoint::start(Answer::version("0.1.0"));
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let c = Cluster::preloaded_with_env(
        &format!(
            "timescaledb_telemetry.endpoint = '{}'\ntimescaledb_telemetry.interval = '1h'",
            direct.url()
        ),
        &[("HTTP_PROXY", &format!("http://127.0.0.1:{dead}")), ("NO_PROXY", "127.0.0.1")],
    );
    c.create_db_with_extension("app");
    assert!(direct.wait_for(1, SOON), "the proxy was not bypassed:\n{}", c.server_log());
}

/// Removes a CA from the operating system's trust store again, even if the test fails.
struct SystemCa(PathBuf);

impl Drop for SystemCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        let _ = Command::new("update-ca-certificates").arg("--fresh").output();
    }
}

#[test]
fn a_ca_added_with_update_ca_certificates_is_trusted() {
    let dir = std::env::temp_dir().join(format!("tt_tls_os_{}", std::process::id()));
    let (ca, cert, key) = certificates(&dir);
    let ep = TlsEndpoint::start(&cert, &key);
    let installed =
        PathBuf::from(format!("/usr/local/share/ca-certificates/tt-test-{}.crt", std::process::id()));
    std::fs::copy(&ca, &installed).unwrap();
    let _cleanup = SystemCa(installed);
    let out = Command::new("update-ca-certificates").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // No SSL_CERT_FILE or similar: the server's environment is the ordinary one.
    let c = Cluster::preloaded(&format!(
        "timescaledb_telemetry.endpoint = 'https://127.0.0.1:{}/v1/metrics'\ntimescaledb_telemetry.interval = '1h'",
        ep.port
    ));
    c.create_db_with_extension("app");
    assert!(wait_until(SOON, || ep.served() >= 1), "{}", c.server_log());
    assert!(c.wait_for_log(SOON, |l| l.contains("is up to date")), "{}", c.server_log());
    let _ = std::fs::remove_dir_all(&dir);
}

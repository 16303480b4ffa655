//! Sending one report: `POST` it, read at most 64 KiB of the answer, check its signature when
//! keys are trusted, find the latest version and the advisories that affect us. Or, with a
//! `file:///directory` endpoint (air-gapped, SPEC §9), write the report into the directory
//! and read the answer from `manifest.json` there: no network at all.
//!
//! Knows nothing of PostgreSQL, so it can run on a helper thread. TLS is rustls with the
//! operating system's trust store (a CA added with `update-ca-certificates` is trusted, a
//! self-signed certificate is not); `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` are honoured.
#![forbid(unsafe_code)]

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use crate::advisory::{self, Reading};
use crate::signature::{self, TrustedKeys};
use crate::state::write_atomically;
use crate::version::Version;

/// Most bytes of an answer we read; anything longer is refused, not truncated.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// A failure reason never exceeds this many characters in the log.
const MAX_REASON_CHARS: usize = 200;

/// The manifest an air-gapped endpoint's directory may hold: the answer.
pub const MANIFEST: &str = "manifest.json";

/// What a successful exchange tells us.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// The HTTP status (2xx); `None` for a directory.
    pub status: Option<u16>,
    /// `current_timescaledb_version` of the answer; `None` when a directory holds no
    /// manifest (the report was delivered, nothing was answered).
    pub latest: Option<Version>,
    /// The answer's advisories, as they concern the installed version.
    pub advisories: Reading,
    /// When its signature says it was signed (keys trusted, a minisign timestamp).
    pub signed_at: Option<u64>,
}

/// How an answer is checked: against our own version, and the keys it must be signed with.
#[derive(Clone, Debug)]
pub struct Check {
    pub installed: Version,
    pub keys: TrustedKeys,
    /// The newest signature time of an answer used so far: an answer signed before it is an
    /// old one replayed (its advisories may be fewer), and is refused.
    pub not_before: Option<u64>,
}

/// Why a report was not delivered, or its answer not understood.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The endpoint answered with a non-2xx status.
    Status(u16),
    /// The whole exchange took longer than the timeout (seconds).
    TimedOut(u64),
    /// No connection could be made (refused, DNS, TLS handshake, proxy).
    Connect(String),
    /// The answer was longer than [`MAX_ANSWER_BYTES`].
    TooLarge,
    /// The answer was not a JSON object with a string `current_timescaledb_version`.
    Malformed(String),
    /// `current_timescaledb_version` was not a valid version.
    InvalidVersion,
    /// Keys are trusted and the answer carried no valid signature by one of them.
    BadSignature,
    /// Validly signed, but before the newest answer used so far: replayed.
    OlderSignature,
    /// The air-gapped directory could not take the report.
    Directory(String),
    /// The air-gapped directory's manifest could not be read.
    Manifest(String),
    /// Anything else that went wrong on the way.
    Other(String),
}

impl SendError {
    /// The kind of failure, for the log budget: what it says without the text an endpoint
    /// or the network chose (a status code is a kind; an error message is not).
    pub fn kind(&self) -> String {
        match self {
            SendError::Status(code) => format!("status {code}"),
            SendError::TimedOut(_) => "timed out".into(),
            SendError::Connect(_) => "connect".into(),
            SendError::TooLarge => "too large".into(),
            SendError::Malformed(_) => "malformed".into(),
            SendError::InvalidVersion => "invalid version".into(),
            SendError::BadSignature | SendError::OlderSignature => "signature".into(),
            SendError::Directory(_) => "directory".into(),
            SendError::Manifest(_) => "manifest".into(),
            SendError::Other(_) => "other".into(),
        }
    }

    /// HTTP status to record for this failure, if the endpoint sent one.
    /// Whether the endpoint answered 2xx, so that it has the report, and only its answer
    /// was not understood.
    pub fn delivered(&self) -> bool {
        matches!(
            self,
            SendError::TooLarge
                | SendError::Malformed(_)
                | SendError::InvalidVersion
                | SendError::BadSignature
                | SendError::OlderSignature
                | SendError::Manifest(_)
        )
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            SendError::Status(code) => Some(*code),
            _ => None,
        }
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            SendError::Status(code @ 300..=399) => format!("HTTP status {code} (redirects are not followed)"),
            SendError::Status(code) => format!("HTTP status {code}"),
            SendError::TimedOut(secs) => format!("timed out after {secs} s"),
            SendError::Connect(e) => format!("could not connect: {e}"),
            SendError::TooLarge => "response larger than 64 KiB".to_string(),
            SendError::Malformed(e) => format!("malformed response: {e}"),
            SendError::InvalidVersion => "invalid version in response".to_string(),
            SendError::BadSignature => "answer signature not valid".to_string(),
            SendError::OlderSignature => "answer signed before the last one used (replayed?)".to_string(),
            SendError::Directory(e) | SendError::Manifest(e) => e.clone(),
            SendError::Other(e) => format!("request failed: {e}"),
        };
        f.write_str(&one_line(&text))
    }
}

/// One log-safe line: control characters, line and paragraph separators and the invisible
/// formatting characters (bidirectional overrides, zero-width ...) escaped, at most 200
/// characters.
pub fn one_line(text: &str) -> String {
    let invisible = |c: char| {
        matches!(c, '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
    };
    let mut out = String::new();
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else if invisible(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    if out.chars().count() > MAX_REASON_CHARS {
        out = out.chars().take(MAX_REASON_CHARS - 3).collect::<String>() + "...";
    }
    out
}

/// Checks an answer body (its signature first, when keys are trusted: nothing of an answer
/// that fails it is used) and reads `current_timescaledb_version` and the advisories.
pub fn parse_answer(body: &[u8], signature: Option<&str>, check: &Check) -> Result<Answer, SendError> {
    let mut signed_at = None;
    if check.keys.required() {
        signed_at =
            signature.and_then(|sig| check.keys.verified(body, sig)).ok_or(SendError::BadSignature)?;
        if check.not_before.is_some_and(|newest| signed_at.is_none_or(|at| at < newest)) {
            return Err(SendError::OlderSignature);
        }
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| SendError::Malformed(format!("not JSON ({e})")))?;
    let object = value.as_object().ok_or_else(|| SendError::Malformed("not a JSON object".to_string()))?;
    let version = object
        .get("current_timescaledb_version")
        .ok_or_else(|| SendError::Malformed("no current_timescaledb_version".to_string()))?
        .as_str()
        .ok_or_else(|| SendError::Malformed("current_timescaledb_version is not a string".to_string()))?;
    let version = Version::parse(version).ok_or(SendError::InvalidVersion)?;
    let advisories = advisory::read(object.get("advisories"), &check.installed);
    Ok(Answer { status: None, latest: Some(version), advisories, signed_at })
}

/// The innermost cause of a reqwest error: its own message is only "error sending request".
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

fn classify(e: reqwest::Error, timeout: Duration) -> SendError {
    if e.is_timeout() {
        SendError::TimedOut(timeout.as_secs())
    } else if e.is_connect() {
        SendError::Connect(root_cause(&e))
    } else {
        SendError::Other(root_cause(&e))
    }
}

/// Delivers `body` (the report's JSON, for database `db_uuid`) to `endpoint`: a POST, or a
/// file in an air-gapped directory. One deadline bounds the whole exchange (connect, send,
/// read): reqwest's own timeouts restart with every chunk read, so an endpoint dripping a
/// byte at a time would outlast them.
pub fn post(
    endpoint: &str,
    body: Vec<u8>,
    db_uuid: &str,
    timeout: Duration,
    user_agent: &str,
    check: &Check,
) -> Result<Answer, SendError> {
    if let Some(dir) = directory(endpoint) {
        return deliver_to_directory(&dir, &body, db_uuid, check);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| SendError::Other(format!("could not start the I/O runtime: {e}")))?;
    let result = runtime.block_on(async {
        tokio::time::timeout(timeout, exchange(endpoint, body, timeout, user_agent, check))
            .await
            .unwrap_or(Err(SendError::TimedOut(timeout.as_secs())))
    });
    // A name lookup still blocked in getaddrinfo must not hold this thread.
    runtime.shutdown_background();
    result
}

async fn exchange(
    endpoint: &str,
    body: Vec<u8>,
    timeout: Duration,
    user_agent: &str,
    check: &Check,
) -> Result<Answer, SendError> {
    let mut response = client(timeout, user_agent)?
        .post(endpoint)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| classify(e, timeout))?;
    let status = response.status().as_u16();
    if !response.status().is_success() {
        return Err(SendError::Status(status));
    }
    if response.content_length().is_some_and(|len| len > MAX_ANSWER_BYTES as u64) {
        return Err(SendError::TooLarge);
    }
    let signature = response
        .headers()
        .get(signature::SIGNATURE_HEADER)
        .and_then(|v| signature::from_header(v.as_bytes()));
    let mut answer = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| classify(e, timeout))? {
        if answer.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(SendError::TooLarge);
        }
        answer.extend_from_slice(&chunk);
    }
    Ok(Answer { status: Some(status), ..parse_answer(&answer, signature.as_deref(), check)? })
}

/// A client is kept this long: building one reads and parses the whole trust store (some
/// 150 files on Debian), which cost more CPU than the exchange itself when a thousand
/// databases report in a burst; a CA added to the store is trusted within this time.
const CLIENT_REUSE_SECS: u64 = 60;

/// A client for `timeout` and `user_agent`: the one kept, while it is younger than
/// [`CLIENT_REUSE_SECS`] and was built for both, else a new one (then kept). Each request runs
/// on its own short-lived runtime, so the client keeps no idle connection: one left in its
/// pool would belong to a runtime that is gone. (This holds with reqwest's features as
/// chosen in Cargo.toml: HTTP/1 only and the system resolver, whose work is bound to the
/// runtime of each call; HTTP/2 or the hickory resolver would keep tasks across requests.)
fn client(timeout: Duration, user_agent: &str) -> Result<reqwest::Client, SendError> {
    use std::sync::Mutex;
    use std::time::Instant;
    struct Kept {
        built: Instant,
        timeout: Duration,
        user_agent: String,
        client: reqwest::Client,
    }
    static KEPT: Mutex<Option<Kept>> = Mutex::new(None);
    let mut kept = KEPT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(k) = kept.as_ref().filter(|k| {
        k.built.elapsed() < Duration::from_secs(CLIENT_REUSE_SECS)
            && k.timeout == timeout
            && k.user_agent == user_agent
    }) {
        return Ok(k.client.clone());
    }
    let client = reqwest::Client::builder()
        .connect_timeout(timeout)
        .user_agent(user_agent)
        .pool_max_idle_per_host(0)
        // The report goes to the configured endpoint and nowhere else: a redirect is a
        // failure (an answer could otherwise send it to any host, https to http included).
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| SendError::Other(root_cause(&e)))?;
    *kept = Some(Kept {
        built: Instant::now(),
        timeout,
        user_agent: user_agent.to_string(),
        client: client.clone(),
    });
    Ok(client)
}

/// The directory of a `file:///absolute/directory` endpoint.
pub fn directory(endpoint: &str) -> Option<std::path::PathBuf> {
    let url = reqwest::Url::parse(endpoint).ok()?;
    (url.scheme() == "file").then(|| url.to_file_path().ok()).flatten()
}

/// The air-gapped exchange: the report replaces `<dir>/<db_uuid>.json` atomically, and the
/// answer is `<dir>/manifest.json` when there is one (signed by `manifest.json.minisig`).
fn deliver_to_directory(dir: &Path, body: &[u8], db_uuid: &str, check: &Check) -> Result<Answer, SendError> {
    // The name comes from the report: only a uuid's characters, so it names a file in `dir`.
    if db_uuid.is_empty()
        || db_uuid.len() > 64
        || !db_uuid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
    {
        return Err(SendError::Other("the report has no valid db_uuid".to_string()));
    }
    let report = dir.join(format!("{db_uuid}.json"));
    write_atomically(&report, body)
        .map_err(|e| SendError::Directory(format!("could not write {}: {e}", report.display())))?;
    let manifest = dir.join(MANIFEST);
    let Some(answer) = read_bounded(&manifest, MAX_ANSWER_BYTES)? else {
        return Ok(Answer { status: None, latest: None, advisories: Reading::default(), signed_at: None });
    };
    let signature = if check.keys.required() {
        read_bounded(&dir.join(format!("{MANIFEST}.minisig")), signature::MAX_SIGNATURE_BYTES)
            .ok()
            .flatten()
            .and_then(|bytes| String::from_utf8(bytes).ok())
    } else {
        None
    };
    parse_answer(&answer, signature.as_deref(), check)
}

/// The contents of the regular file `path`, `None` if there is none; more than `max` bytes
/// is [`SendError::TooLarge`] (read no further than that), anything but a file a failure.
/// (The receiver reads its manifest and key with it too.)
pub fn read_bounded(path: &Path, max: usize) -> Result<Option<Vec<u8>>, SendError> {
    use std::os::unix::fs::OpenOptionsExt;
    // Non-blocking: a FIFO in its place must not hold the thread (a regular file's reads
    // are not affected).
    let file = match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(SendError::Manifest(format!("could not read {}: {e}", path.display()))),
    };
    let metadata = file
        .metadata()
        .map_err(|e| SendError::Manifest(format!("could not read {}: {e}", path.display())))?;
    if !metadata.is_file() {
        return Err(SendError::Manifest(format!("{} is not a file", path.display())));
    }
    let mut bytes = Vec::new();
    file.take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| SendError::Manifest(format!("could not read {}: {e}", path.display())))?;
    if bytes.len() > max {
        return Err(SendError::TooLarge);
    }
    Ok(Some(bytes))
}

/// Why an endpoint value is refused, or `None` when it is a usable http/https URL or an
/// absolute `file:///directory`.
pub fn endpoint_problem(value: &str) -> Option<String> {
    match reqwest::Url::parse(value) {
        Err(e) => Some(format!("\"{value}\" is not a URL: {e}.")),
        Ok(url) if url.scheme() == "file" => match url.to_file_path() {
            Ok(_) if value.starts_with("file:///") => None,
            _ => Some(
                "A file URL names an absolute directory on this machine: file:///path/to/dir.".to_string(),
            ),
        },
        Ok(url) if url.scheme() != "http" && url.scheme() != "https" => {
            Some(format!("The scheme must be http, https or file, not \"{}\".", url.scheme()))
        }
        Ok(url) if url.host_str().is_none_or(str::is_empty) => Some("The URL has no host.".to_string()),
        Ok(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn unsigned() -> Check {
        Check { installed: Version::parse("0.3.0").unwrap(), keys: TrustedKeys::default(), not_before: None }
    }

    fn parse(body: &[u8]) -> Result<Version, SendError> {
        parse_answer(body, None, &unsigned()).map(|a| a.latest.unwrap())
    }

    #[test]
    fn the_kept_client_has_no_part_that_outlives_a_request() {
        // `client()` is kept across requests, each on its own runtime: sound only while
        // reqwest has neither HTTP/2 (h2) nor the hickory resolver, whose tasks would
        // outlive the runtime that spawned them. Enabling either puts its crate in the lock.
        let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock")).unwrap();
        assert!(lock.contains("name = \"reqwest\""), "not the workspace's lock");
        for name in ["h2", "hickory-resolver"] {
            assert!(!lock.contains(&format!("name = \"{name}\"\n")), "{name} is in Cargo.lock: see client()");
        }
    }

    #[test]
    fn answer_with_a_version_is_understood() {
        let v = parse(br#"{"current_timescaledb_version": "2.19.3", "other": 1}"#).unwrap();
        assert_eq!(v.as_str(), "2.19.3");
    }

    #[test]
    fn advisories_come_with_the_version_and_bad_ones_do_not_spoil_it() {
        let body = br#"{"current_timescaledb_version": "0.3.1", "advisories": [
            7, {"id": "GHSA-1", "affected": [{"ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "0.3.1"}]}]}]}]}"#;
        let answer = parse_answer(body, None, &unsigned()).unwrap();
        let (v, reading) = (answer.latest.unwrap(), answer.advisories);
        assert_eq!(v.as_str(), "0.3.1");
        assert_eq!(reading.affecting.len(), 1);
        assert_eq!(reading.skipped.len(), 1);
    }

    #[test]
    fn with_trusted_keys_an_unsigned_or_badly_signed_answer_is_refused_whole() {
        let check = Check {
            installed: Version::parse("0.3.0").unwrap(),
            keys: TrustedKeys::parse("RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3").unwrap(),
            not_before: None,
        };
        let body = br#"{"current_timescaledb_version": "9.9.9"}"#;
        assert_eq!(parse_answer(body, None, &check).unwrap_err(), SendError::BadSignature);
        assert_eq!(parse_answer(body, Some("garbage"), &check).unwrap_err(), SendError::BadSignature);
        assert_eq!(SendError::BadSignature.to_string(), "answer signature not valid");
        assert!(SendError::BadSignature.delivered());
    }

    #[test]
    fn a_signed_answer_older_than_the_newest_used_is_a_replay() {
        use crate::signature::tests::{ANSWER, MINISIG, PUBLIC};
        let signed_at = 1796081427; // in MINISIG's trusted comment
        let check = |not_before| Check {
            installed: Version::parse("0.3.0").unwrap(),
            keys: TrustedKeys::parse(PUBLIC).unwrap(),
            not_before,
        };
        assert_eq!(parse_answer(ANSWER, Some(MINISIG), &check(None)).unwrap().signed_at, Some(signed_at));
        assert!(
            parse_answer(ANSWER, Some(MINISIG), &check(Some(signed_at))).is_ok(),
            "the same answer again"
        );
        let replay = parse_answer(ANSWER, Some(MINISIG), &check(Some(signed_at + 1))).unwrap_err();
        assert_eq!(replay, SendError::OlderSignature);
        assert!(replay.delivered());
    }

    #[test]
    fn non_json_and_wrong_shapes_are_malformed() {
        for body in
            [&b"<html>oops</html>"[..], b"[1,2]", b"{}", br#"{"current_timescaledb_version": 2}"#, b""]
        {
            assert!(
                matches!(parse(body), Err(SendError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn a_bad_version_string_is_invalid() {
        let err = parse(br#"{"current_timescaledb_version": "2.0; DROP TABLE x"}"#).unwrap_err();
        assert_eq!(err, SendError::InvalidVersion);
        assert_eq!(err.to_string(), "invalid version in response");
    }

    #[test]
    fn reasons_are_one_bounded_line() {
        let long = SendError::Malformed("x\n\u{1b}[31m".to_string() + &"y".repeat(500));
        let text = long.to_string();
        assert!(!text.chars().any(char::is_control), "{text}");
        assert!(text.contains("\\n"));
        assert_eq!(text.chars().count(), 200);
    }

    #[test]
    fn invisible_and_reordering_characters_are_escaped() {
        assert_eq!(one_line("a\u{202E}b\u{2028}c\u{200B}d"), "a\\u{202e}b\\u{2028}c\\u{200b}d");
        assert_eq!(one_line("Müller ✓"), "Müller ✓");
    }

    #[test]
    fn reasons_read_as_the_spec_says() {
        assert_eq!(SendError::Status(503).to_string(), "HTTP status 503");
        assert_eq!(SendError::Status(307).to_string(), "HTTP status 307 (redirects are not followed)");
        assert_eq!(SendError::TimedOut(10).to_string(), "timed out after 10 s");
        assert_eq!(SendError::TooLarge.to_string(), "response larger than 64 KiB");
        assert!(SendError::Connect("refused".into()).to_string().starts_with("could not connect: "));
    }

    /// A server on 127.0.0.1 that reads one request, then lets `answer` write to the
    /// connection; returns its port.
    fn one_answer_server(answer: impl FnOnce(&mut std::net::TcpStream) + Send + 'static) -> u16 {
        use std::io::Read;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            if let Some(Ok(mut stream)) = listener.incoming().next() {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                answer(&mut stream);
            }
        });
        port
    }

    /// A server that answers with `head`, then one byte every 100 ms for up to a minute.
    fn dripping_server(head: &'static str) -> u16 {
        one_answer_server(move |stream| {
            let _ = stream.write_all(head.as_bytes());
            for _ in 0..600 {
                if stream.write_all(b" ").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    }

    fn post_to(port: u16, timeout_secs: u64) -> Result<Answer, SendError> {
        post(
            &format!("http://127.0.0.1:{port}/"),
            b"{}".to_vec(),
            "u",
            Duration::from_secs(timeout_secs),
            "t",
            &unsigned(),
        )
    }

    #[test]
    fn a_dripping_answer_is_cut_at_the_deadline() {
        let port = dripping_server("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
        let start = std::time::Instant::now();
        assert_eq!(post_to(port, 1).unwrap_err(), SendError::TimedOut(1));
        assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
    }

    #[test]
    fn an_announced_oversized_answer_is_refused_without_reading_it() {
        let port = dripping_server("HTTP/1.1 200 OK\r\nContent-Length: 10485760\r\n\r\n");
        assert_eq!(post_to(port, 5).unwrap_err(), SendError::TooLarge);
    }

    #[test]
    fn a_streamed_answer_over_64_kib_without_content_length_is_refused() {
        let port = one_answer_server(|stream| {
            // No Content-Length: the body ends when the connection closes.
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{\"pad\": \"");
            for _ in 0..100 {
                if stream.write_all(&[b'x'; 1024]).is_err() {
                    return;
                }
            }
        });
        assert_eq!(post_to(port, 5).unwrap_err(), SendError::TooLarge);
    }

    #[test]
    fn a_redirect_is_a_failure_and_is_not_followed() {
        let target = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let target_port = target.local_addr().unwrap().port();
        target.set_nonblocking(true).unwrap();
        let port = one_answer_server(move |stream| {
            let head = format!(
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:{target_port}/x\r\nContent-Length: 0\r\n\r\n"
            );
            let _ = stream.write_all(head.as_bytes());
        });
        assert_eq!(post_to(port, 2).unwrap_err(), SendError::Status(307));
        assert!(target.accept().is_err(), "the redirect target was contacted");
    }

    #[test]
    fn failure_kinds_leave_out_the_varying_text() {
        assert_eq!(SendError::Connect("a".into()).kind(), SendError::Connect("b".into()).kind());
        assert_eq!(SendError::Malformed("a".into()).kind(), SendError::Malformed("b".into()).kind());
        assert_ne!(SendError::Status(500).kind(), SendError::Status(503).kind());
    }

    #[test]
    fn a_closed_port_is_a_connect_error() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let err = post_to(port, 2).unwrap_err();
        assert!(matches!(err, SendError::Connect(_)), "{err:?}");
    }

    #[test]
    fn http_and_https_endpoints_are_accepted() {
        assert_eq!(endpoint_problem("https://telemetry.example.com/v1/metrics"), None);
        assert_eq!(endpoint_problem("http://127.0.0.1:8080/"), None);
    }

    #[test]
    fn other_schemes_and_non_urls_are_refused() {
        assert!(endpoint_problem("ftp://example.com/").unwrap().contains("http, https or file"));
        assert!(endpoint_problem("file://host/dir").is_some());
        assert!(endpoint_problem("file:relative/dir").is_some());
        assert_eq!(endpoint_problem("file:///var/lib/telemetry"), None);
        assert!(endpoint_problem("not a url").unwrap().contains("not a URL"));
        assert!(endpoint_problem("").is_some());
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("tt_http_{name}_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn to_dir(dir: &Path, uuid: &str) -> Result<Answer, SendError> {
        let endpoint = format!("file://{}", dir.display());
        post(&endpoint, br#"{"db_uuid": 1}"#.to_vec(), uuid, Duration::from_secs(1), "t", &unsigned())
    }

    #[test]
    fn a_directory_takes_the_report_and_answers_with_its_manifest() {
        let dir = temp_dir("dir");
        let uuid = "0f8e4a52-46a4-4b1c-9c43-b5c1f4b1a111";
        let answer = to_dir(&dir, uuid).unwrap();
        assert_eq!((answer.status, answer.latest), (None, None), "no manifest: delivered, nothing answered");
        assert_eq!(std::fs::read(dir.join(format!("{uuid}.json"))).unwrap(), br#"{"db_uuid": 1}"#);
        std::fs::write(dir.join(MANIFEST), br#"{"current_timescaledb_version": "0.4.0"}"#).unwrap();
        assert_eq!(to_dir(&dir, uuid).unwrap().latest.unwrap().as_str(), "0.4.0");
        // Only a uuid names a file there.
        assert!(matches!(to_dir(&dir, "../../etc/x"), Err(SendError::Other(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_directory_or_a_manifest_that_is_no_small_file_is_a_failure() {
        let dir = temp_dir("bad");
        let uuid = "0f8e4a52-46a4-4b1c-9c43-b5c1f4b1a111";
        let missing = to_dir(&dir.join("absent"), uuid).unwrap_err();
        assert!(matches!(&missing, SendError::Directory(e) if e.contains("could not write")), "{missing:?}");
        assert!(!missing.delivered());
        std::fs::create_dir(dir.join(MANIFEST)).unwrap();
        let directory = to_dir(&dir, uuid).unwrap_err();
        assert!(directory.to_string().ends_with("manifest.json is not a file"), "{directory}");
        assert!(directory.delivered(), "the report was written");
        std::fs::remove_dir(dir.join(MANIFEST)).unwrap();
        // A FIFO: no writer, and no wait for one.
        assert!(std::process::Command::new("mkfifo").arg(dir.join(MANIFEST)).status().unwrap().success());
        assert!(to_dir(&dir, uuid).unwrap_err().to_string().ends_with("manifest.json is not a file"));
        std::fs::remove_file(dir.join(MANIFEST)).unwrap();
        // 100 MB (sparse): refused after reading 64 KiB and a byte.
        let big = std::fs::File::create(dir.join(MANIFEST)).unwrap();
        big.set_len(100 * 1024 * 1024).unwrap();
        assert_eq!(to_dir(&dir, uuid).unwrap_err(), SendError::TooLarge);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

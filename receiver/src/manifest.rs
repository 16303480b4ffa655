//! The manifest: the answer to every report. It is the operator's file, in the shape the
//! extension reads (SPEC §9): `{"current_timescaledb_version": "…", "advisories": [OSV…]}`,
//! checked once at start so that a typo is a start-up error rather than a fleet that
//! silently stops checking. With a minisign secret key configured, every answer carries a
//! fresh signature in the `Telemetry-Signature` header, timestamped in its trusted comment
//! (the extension refuses an answer signed before the last one it used: a replay).
#![forbid(unsafe_code)]

use std::path::Path;

use base64::Engine;
use serde_json::Value;
use timescaledb_telemetry_core::advisory::MAX_ADVISORIES;
use timescaledb_telemetry_core::http::{read_bounded, SendError, MAX_ANSWER_BYTES};
use timescaledb_telemetry_core::signature::SIGNATURE_HEADER;
use timescaledb_telemetry_core::version::Version;

/// Largest manifest (and key file) read: the extension reads no longer answer.
pub const MAX_MANIFEST_BYTES: usize = MAX_ANSWER_BYTES;
/// The header the signature goes in.
pub const HEADER: &str = SIGNATURE_HEADER;

/// The configured answer.
pub struct Manifest {
    /// The answer's exact bytes (what is signed).
    pub body: Vec<u8>,
    pub current: Version,
    /// The `advisories` array as configured (possibly empty).
    pub advisories: Value,
    signer: Option<minisign::SecretKey>,
}

impl Manifest {
    /// Reads and checks the manifest file and, if given, the minisign secret key (one without
    /// a password, as `keygen` makes; minisign 0.11's own `-G -W` keys carry a zero checksum
    /// that the minisign crate refuses).
    pub fn load(path: &Path, secret_key: Option<&Path>) -> Result<Manifest, String> {
        let text = read_small(path, "manifest")?;
        let mut manifest = Manifest::from_json(&text)?;
        if let Some(key) = secret_key {
            let text = read_small(key, "secret key")?;
            let sk = minisign::SecretKeyBox::from_string(&text)
                .and_then(|b| b.into_unencrypted_secret_key())
                .map_err(|e| {
                    format!(
                        "{}: not a minisign secret key without a password ({e}); make one with \
                         `timescaledb-telemetry-receiver keygen DIR`",
                        key.display()
                    )
                })?;
            manifest.signer = Some(sk);
        }
        Ok(manifest)
    }

    /// Checks a manifest's text: a JSON object whose `current_timescaledb_version` is a
    /// version and whose `advisories`, if present, is an array of at most 100 objects, each
    /// with a string `id`.
    pub fn from_json(text: &str) -> Result<Manifest, String> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("the manifest is not JSON: {e}"))?;
        let current = value
            .get("current_timescaledb_version")
            .and_then(Value::as_str)
            .and_then(Version::parse)
            .ok_or("the manifest has no valid current_timescaledb_version (a string like \"0.4.1\")")?;
        let advisories = value.get("advisories").cloned().unwrap_or(Value::Array(Vec::new()));
        let list = advisories.as_array().ok_or("the manifest's advisories is not an array")?;
        if list.len() > MAX_ADVISORIES {
            return Err(format!(
                "the manifest has {} advisories; the extension reads at most {MAX_ADVISORIES}",
                list.len()
            ));
        }
        if let Some(i) = list.iter().position(|a| a.get("id").and_then(Value::as_str).is_none()) {
            return Err(format!("advisory {} of the manifest has no string id", i + 1));
        }
        let body = serde_json::to_vec(&value).map_err(|e| e.to_string())?;
        if body.len() > MAX_ANSWER_BYTES {
            return Err(format!(
                "the manifest is larger than the {MAX_ANSWER_BYTES} bytes the extension reads"
            ));
        }
        Ok(Manifest { body, current, advisories, signer: None })
    }

    /// The signature of the answer, base64 of the whole `.minisig` text (the header's value),
    /// timestamped now; `None` without a key.
    pub fn signature(&self) -> Option<String> {
        let sk = self.signer.as_ref()?;
        let now = chrono::Utc::now().timestamp();
        let comment = format!("timestamp:{now}\tfile:manifest.json");
        let signed = minisign::sign(None, sk, self.body.as_slice(), Some(&comment), None).ok()?;
        Some(base64::engine::general_purpose::STANDARD.encode(signed.into_string()))
    }
}

/// `keygen DIR`: a new key pair without a password, `DIR/receiver.key` (mode 0600) and
/// `DIR/receiver.pub`, in minisign's formats; returns the public key's line for the
/// extension's `timescaledb_telemetry.trusted_keys`. Existing files are not overwritten.
pub fn keygen(dir: &Path) -> Result<String, String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let pair = minisign::KeyPair::generate_unencrypted_keypair().map_err(|e| e.to_string())?;
    let public = pair.pk.to_base64();
    let files = [
        ("receiver.key", 0o600, pair.sk.to_box(None).map_err(|e| e.to_string())?.into_string()),
        ("receiver.pub", 0o644, pair.pk.to_box().map_err(|e| e.to_string())?.into_string()),
    ];
    for (name, mode, text) in files {
        let path = dir.join(name);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(public)
}

/// A file of ours as text, at most `MAX_MANIFEST_BYTES` (read as the extension reads an
/// air-gapped manifest: a regular file only, a FIFO in its place never blocks).
fn read_small(path: &Path, what: &str) -> Result<String, String> {
    let bytes = read_bounded(path, MAX_MANIFEST_BYTES)
        .map_err(|e| match e {
            SendError::TooLarge => {
                format!("{what} {}: larger than {MAX_MANIFEST_BYTES} bytes", path.display())
            }
            other => format!("{what}: {other}"),
        })?
        .ok_or_else(|| format!("{what} {}: no such file", path.display()))?;
    String::from_utf8(bytes).map_err(|_| format!("{what} {}: not UTF-8", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use timescaledb_telemetry_core::signature::{from_header, TrustedKeys};

    #[test]
    fn a_manifest_is_checked_when_read() {
        for (text, want) in [
            ("nope", "not JSON"),
            ("{}", "no valid current_timescaledb_version"),
            (r#"{"current_timescaledb_version": "latest"}"#, "no valid current"),
            (r#"{"current_timescaledb_version": "1.0", "advisories": {}}"#, "not an array"),
            (r#"{"current_timescaledb_version": "1.0", "advisories": [{"x": 1}]}"#, "advisory 1"),
        ] {
            let err = Manifest::from_json(text).err().unwrap();
            assert!(err.contains(want), "{err} for {text}");
        }
        let many = format!(
            r#"{{"current_timescaledb_version": "1.0", "advisories": [{}]}}"#,
            vec![r#"{"id": "A"}"#; 101].join(",")
        );
        assert!(Manifest::from_json(&many).err().unwrap().contains("at most 100"));
        let m = Manifest::from_json(r#"{"current_timescaledb_version": "0.4.1"}"#).unwrap();
        assert_eq!(m.current.as_str(), "0.4.1");
        assert_eq!(m.advisories, Value::Array(vec![]));
        assert!(m.signature().is_none());
    }

    #[test]
    fn keygen_makes_a_key_the_receiver_reads_and_refuses_to_overwrite_it() {
        let dir = std::env::temp_dir().join(format!("receiver-keygen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let manifest = dir.join("manifest.json");
        std::fs::write(&manifest, r#"{"current_timescaledb_version": "0.4.1"}"#).unwrap();
        let public = keygen(&dir).unwrap();
        let m = Manifest::load(&manifest, Some(&dir.join("receiver.key"))).unwrap();
        let minisig = from_header(m.signature().unwrap().as_bytes()).unwrap();
        assert!(TrustedKeys::parse(&public).unwrap().verify(&m.body, &minisig));
        assert!(keygen(&dir).unwrap_err().contains("exists"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_signature_is_what_the_extension_verifies_and_carries_the_time() {
        let pair = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let mut m = Manifest::from_json(r#"{"current_timescaledb_version": "0.4.1"}"#).unwrap();
        m.signer = Some(pair.sk);
        let header = m.signature().unwrap();
        // Read as the extension reads the header.
        let minisig = from_header(header.as_bytes()).unwrap();
        let keys = TrustedKeys::parse(&pair.pk.to_base64()).unwrap();
        assert!(!keys.verify(br#"{"current_timescaledb_version":"9.9.9"}"#, &minisig));
        let signed_at = keys.verified(&m.body, &minisig).unwrap().unwrap() as i64;
        assert!((signed_at - chrono::Utc::now().timestamp()).abs() < 5);
    }
}

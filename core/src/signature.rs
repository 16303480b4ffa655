//! Signed answers (SPEC §9): when `timescaledb_telemetry.trusted_keys` names minisign public
//! keys, an answer is used only with a valid minisign signature of its exact bytes by one of
//! them, as the stock `minisign -S` tool makes it. Over HTTP the signature travels in the
//! `Telemetry-Signature` header (the whole `.minisig` file, base64, one line); offline it is
//! the file `<manifest>.minisig`. Verification is minisign-verify's; this module only reads
//! the setting and the header.
#![forbid(unsafe_code)]

use base64::Engine;
use minisign_verify::{PublicKey, Signature};

/// The response header that carries an answer's signature.
pub const SIGNATURE_HEADER: &str = "Telemetry-Signature";
/// Most keys the setting may name (a release key and its successor are the usual two).
pub const MAX_KEYS: usize = 16;
/// Most bytes of a signature we read: a `.minisig` file is about 300.
pub const MAX_SIGNATURE_BYTES: usize = 4096;

/// The keys an answer must be signed with; none (a blank setting): answers are used
/// unsigned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedKeys {
    keys: Vec<PublicKey>,
    required: bool,
}

impl TrustedKeys {
    /// Reads the setting: public keys as `minisign -G` writes them (the base64 line of the
    /// `.pub` file), separated by commas; blank: none. Says which key does not parse.
    pub fn parse(setting: &str) -> Result<TrustedKeys, String> {
        let keys: Vec<&str> = setting.split(',').map(str::trim).filter(|k| !k.is_empty()).collect();
        if keys.is_empty() && !setting.trim().is_empty() {
            return Err("No key is given.".to_string());
        }
        if keys.len() > MAX_KEYS {
            return Err(format!("At most {MAX_KEYS} keys, not {}.", keys.len()));
        }
        let keys = keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                PublicKey::from_base64(key)
                    .map_err(|e| format!("Key {} is not a minisign public key ({e}).", i + 1))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TrustedKeys { required: !keys.is_empty(), keys })
    }

    /// The keys of the setting in force, which may not parse (the server started with a
    /// bad value in its configuration file): then no key is trusted and a signature is
    /// still required, so no answer is used — a typo never turns the check off.
    pub fn in_force(setting: Option<&str>) -> TrustedKeys {
        match setting.filter(|s| !s.trim().is_empty()) {
            None => TrustedKeys::default(),
            Some(value) => {
                TrustedKeys::parse(value).unwrap_or(TrustedKeys { keys: Vec::new(), required: true })
            }
        }
    }

    /// Whether answers must be signed.
    pub fn required(&self) -> bool {
        self.required
    }

    /// Whether `minisig` (the text of a `.minisig` file) is a valid signature of `body` by
    /// one of the keys.
    pub fn verify(&self, body: &[u8], minisig: &str) -> bool {
        self.verified(body, minisig).is_some()
    }

    /// `Some` when `minisig` is a valid signature of `body` by one of the keys, with the time
    /// it says it was made: `timestamp:<Unix seconds>` in its trusted comment (signed too),
    /// which `minisign -S` writes unless told otherwise.
    pub fn verified(&self, body: &[u8], minisig: &str) -> Option<Option<u64>> {
        let signature = Signature::decode(minisig).ok()?;
        if !self.keys.iter().any(|key| key.verify(body, &signature, false).is_ok()) {
            return None;
        }
        Some(
            signature
                .trusted_comment()
                .split('\t')
                .find_map(|part| part.strip_prefix("timestamp:"))
                .and_then(|t| t.trim().parse().ok()),
        )
    }
}

/// The `.minisig` text carried base64-encoded in a header value; `None` when it is not
/// base64 of UTF-8 text or is longer than a signature can be.
pub fn from_header(value: &[u8]) -> Option<String> {
    if value.len() > MAX_SIGNATURE_BYTES * 2 {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(value.trim_ascii()).ok()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    // Made with minisign 0.11 (`minisign -G -W`, then `minisign -S -m answer.json`) over the
    // bytes of ANSWER.
    pub(crate) const PUBLIC: &str = "RWQUjD19NCXbUQEvJrMDIWbaSPfmalrYb+4rIxB575sj8YMP7zdf3dvT";
    pub(crate) const ANSWER: &[u8] = br#"{"current_timescaledb_version":"9.9.9"}"#;
    pub(crate) const MINISIG: &str = "untrusted comment: signature from minisign secret key\nRUQUjD19NCXbUVtBiHABeBh2KtRtwTr9LCJf3xV6ne6JrvoKnEeCB2gw+cNmvLRBwxqhJa6qsMZjc8vNedq52K0AZeSloG5hlA8=\ntrusted comment: timestamp:1796081427\tfile:answer.json\thashed\nin5ZoeA/8hmGUVQ+5Wm3OnuJIX59n7gIQMFoRl1/rq95QMX4zs5VxL/2/BdRLTJvUR7Gt6qtOlElDDfakxPfCg==\n";
    // Another key of the same tool.
    const OTHER: &str = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3";

    #[test]
    fn keys_parse_and_bad_keys_say_which() {
        assert!(!TrustedKeys::parse("").unwrap().required());
        assert!(!TrustedKeys::parse("  ").unwrap().required());
        assert_eq!(TrustedKeys::parse(" , ").unwrap_err(), "No key is given.");
        assert!(TrustedKeys::parse(PUBLIC).unwrap().required());
        assert_eq!(TrustedKeys::parse(&format!("{PUBLIC}, {PUBLIC}")).unwrap().keys.len(), 2);
        let bad = TrustedKeys::parse(&format!("{PUBLIC},not-a-key")).unwrap_err();
        assert!(bad.starts_with("Key 2 is not a minisign public key"), "{bad}");
        assert!(TrustedKeys::parse(&vec![PUBLIC; 17].join(",")).is_err());
    }

    #[test]
    fn a_setting_in_force_that_does_not_parse_requires_what_nothing_can_give() {
        assert!(!TrustedKeys::in_force(None).required());
        assert!(!TrustedKeys::in_force(Some(" ")).required());
        let typo = TrustedKeys::in_force(Some(&PUBLIC[1..]));
        assert!(typo.required());
        assert!(!typo.verify(ANSWER, MINISIG));
        assert!(TrustedKeys::in_force(Some(PUBLIC)).verify(ANSWER, MINISIG));
    }

    #[test]
    fn a_header_that_is_not_base64_is_no_signature() {
        assert_eq!(from_header(b"%%% not base64"), None);
        assert_eq!(from_header(&vec![b'A'; 10_000]), None);
        assert_eq!(from_header(b"aGVsbG8=").as_deref(), Some("hello"));
        assert_eq!(from_header(b" aGVsbG8=\r\n").as_deref(), Some("hello"));
    }

    #[test]
    fn garbage_is_never_a_valid_signature() {
        let keys = TrustedKeys::parse(PUBLIC).unwrap();
        assert!(!keys.verify(b"{}", "not a signature"));
        assert!(!keys.verify(b"{}", ""));
    }

    #[test]
    fn only_the_exact_bytes_by_a_trusted_key_verify() {
        let keys = TrustedKeys::parse(PUBLIC).unwrap();
        assert!(keys.verify(ANSWER, MINISIG));
        assert!(!keys.verify(br#"{"current_timescaledb_version":"9.9.8"}"#, MINISIG));
        assert!(!keys.verify(&[ANSWER, b" "].concat(), MINISIG));
        assert!(!TrustedKeys::parse(OTHER).unwrap().verify(ANSWER, MINISIG));
        // One trusted key among several is enough.
        assert!(TrustedKeys::parse(&format!("{OTHER},{PUBLIC}")).unwrap().verify(ANSWER, MINISIG));
        // The signed time, from the trusted comment.
        assert_eq!(keys.verified(ANSWER, MINISIG), Some(Some(1796081427)));
        // Through the header, as an endpoint sends it.
        let header = base64::engine::general_purpose::STANDARD.encode(MINISIG);
        assert!(keys.verify(ANSWER, &from_header(header.as_bytes()).unwrap()));
    }
}

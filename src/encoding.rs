//! Text between the database's encoding and UTF-8, never failing (SPEC §4.2): PostgreSQL's
//! own conversions, asked not to raise an ERROR; a character one side cannot hold is written
//! out as an escape instead (`\xNN` per byte read from the database, `\u{XXXX}` for a
//! character the database cannot store). In a UTF-8 database nothing is converted; in a
//! SQL_ASCII one, which knows no conversion, bytes that are not UTF-8 are escaped.

use pgrx::pg_sys;

use crate::report::model::text_from_bytes;

/// The database's encoding (`pg_enc`).
fn database_encoding() -> i32 {
    // SAFETY: reads the encoding this backend's database was opened with.
    unsafe { pg_sys::GetDatabaseEncoding() }
}

const UTF8: i32 = pg_sys::pg_enc::PG_UTF8 as i32;
const SQL_ASCII: i32 = pg_sys::pg_enc::PG_SQL_ASCII as i32;

/// Text read from the database (its bytes, in its encoding) as a string.
pub(crate) fn from_database(bytes: &[u8]) -> String {
    let encoding = database_encoding();
    if encoding == UTF8 || encoding == SQL_ASCII {
        return text_from_bytes(bytes);
    }
    let utf8 = convert(bytes, encoding, UTF8, |bad| bad.iter().map(|b| format!("\\x{b:02x}")).collect());
    text_from_bytes(&utf8)
}

/// UTF-8 text (JSON, whose syntax is ASCII: a character that needs escaping is inside a
/// string) in the database's encoding, with each character the database cannot store
/// written `\\u{XXXX}` (an escaped backslash in the JSON string, then the code point).
pub(crate) fn json_to_database(json: &str) -> Vec<u8> {
    let encoding = database_encoding();
    if encoding == UTF8 || encoding == SQL_ASCII {
        return json.as_bytes().to_vec();
    }
    convert(json.as_bytes(), UTF8, encoding, |bad| {
        String::from_utf8_lossy(bad).chars().map(|c| format!("\\\\u{{{:04X}}}", c as u32)).collect()
    })
}

/// `src` converted from encoding `from` to `to` by PostgreSQL's default conversion; each
/// character it cannot convert (or every non-ASCII byte, when there is no conversion) is
/// replaced by `escape(its bytes)`.
fn convert(src: &[u8], from: i32, to: i32, escape: impl Fn(&[u8]) -> String) -> Vec<u8> {
    // SAFETY: a catalog lookup, inside a transaction (both callers are).
    let proc = unsafe { pg_sys::FindDefaultConversionProc(from, to) };
    let mut out = Vec::with_capacity(src.len());
    let mut input = src.to_vec();
    let mut pos = 0;
    while pos < input.len() {
        let rest = input.len() - pos;
        let converted = if proc == pg_sys::InvalidOid {
            // No conversion: ASCII is the same in every server encoding.
            let ascii = input[pos..].iter().take_while(|b| b.is_ascii()).count();
            out.extend_from_slice(&input[pos..pos + ascii]);
            ascii
        } else {
            let capacity = rest * pg_sys::MAX_CONVERSION_GROWTH as usize + 1;
            let mut buffer = vec![0u8; capacity];
            // SAFETY: `input[pos..]` holds `rest` bytes and `buffer` the room PostgreSQL asks
            // for (MAX_CONVERSION_GROWTH per byte, plus the NUL it writes); with noError it
            // stops before a character it cannot convert instead of raising an ERROR, and
            // returns how many source bytes it converted; the output is NUL-terminated.
            let n = unsafe {
                pg_sys::pg_do_encoding_conversion_buf(
                    proc,
                    from,
                    to,
                    input.as_mut_ptr().add(pos),
                    rest as i32,
                    buffer.as_mut_ptr(),
                    capacity as i32,
                    true,
                )
            };
            let written = buffer.iter().position(|b| *b == 0).unwrap_or(0);
            out.extend_from_slice(&buffer[..written]);
            (n.max(0) as usize).min(rest)
        };
        pos += converted;
        if pos < input.len() {
            // SAFETY: `input[pos..]` is at least one byte; pg_encoding_mblen reads only as
            // far as the character's first byte says, which we clamp to what is there.
            let len = unsafe { pg_sys::pg_encoding_mblen(from, input.as_ptr().add(pos).cast()) };
            let len = (len.max(1) as usize).min(input.len() - pos);
            out.extend_from_slice(escape(&input[pos..pos + len]).as_bytes());
            pos += len;
        }
    }
    out
}

//! Payload bytes as the TAB sent them: as is, or gzip-compressed (HTTP `Content-Encoding`).
//!
//! The fetcher forwards a TAB response body without decoding it, so a ~400 KB event crosses
//! the wire as ~50 KB; it is inflated here, once, where it is parsed: by libdeflate when it is
//! one gzip member (`gzip_fast`), else by flate2's streaming reader.

use std::borrow::Cow;
use std::io::Read;

use flate2::read::MultiGzDecoder;

use crate::error::PayloadError;

/// The most an event may inflate to: far above any real event (~0.5 MB), low enough that a
/// gzip bomb cannot exhaust memory.
pub const MAX_INFLATED_BYTES: u64 = 64 * 1024 * 1024;

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InflateError {
    /// Not valid gzip, or larger than `MAX_INFLATED_BYTES` inflated (a malformed payload).
    Payload(PayloadError),
    /// An encoding other than identity or gzip (a bad argument).
    Encoding(String),
}

/// The body in plain bytes: `encoding` is "" or "identity" (as is) or "gzip".
///
/// # Errors
/// `InflateError::Encoding` for another encoding; `InflateError::Payload` (a decode error)
/// when the gzip stream is corrupt or inflates beyond `MAX_INFLATED_BYTES`.
pub fn inflate<'a>(body: &'a [u8], encoding: &str) -> Result<Cow<'a, [u8]>, InflateError> {
    match encoding {
        "" | "identity" => Ok(Cow::Borrowed(body)),
        "gzip" => {
            if let Some(out) = crate::gzip_fast::inflate_single_member(body, MAX_INFLATED_BYTES) {
                return Ok(Cow::Owned(out));
            }
            // Several members, or a stream libdeflate refused: read it as a stream, which
            // also says what is wrong with a bad one.
            let mut out = Vec::with_capacity(body.len().saturating_mul(8));
            MultiGzDecoder::new(body).take(MAX_INFLATED_BYTES + 1).read_to_end(&mut out).map_err(|e| {
                InflateError::Payload(PayloadError::decode(format!("payload is not valid gzip: {e}")))
            })?;
            if out.len() as u64 > MAX_INFLATED_BYTES {
                return Err(InflateError::Payload(PayloadError::decode(format!(
                    "payload inflates to more than {MAX_INFLATED_BYTES} bytes"
                ))));
            }
            Ok(Cow::Owned(out))
        }
        other => Err(InflateError::Encoding(format!(
            "payload encoding {other:?} is not supported (identity or gzip)"
        ))),
    }
}

/// `data` as one gzip member (tests of this module and of `gzip_fast`).
#[cfg(test)]
pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;

    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = encoder.write_all(data);
    encoder.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_borrowed_and_gzip_inflated() {
        let body = br#"{"data":{}}"#;
        assert!(matches!(inflate(body, ""), Ok(Cow::Borrowed(_))));
        assert!(matches!(inflate(body, "identity"), Ok(Cow::Borrowed(_))));
        assert_eq!(inflate(&gzip(body), "gzip").map(Cow::into_owned), Ok(body.to_vec()));
    }

    #[test]
    fn corrupt_gzip_is_a_decode_error_and_other_encodings_are_refused() {
        let mut broken = gzip(b"{\"data\":{\"race\":{}}}");
        let middle = broken.len() / 2;
        broken.truncate(middle);
        assert!(matches!(inflate(&broken, "gzip"), Err(InflateError::Payload(_))));
        assert!(matches!(inflate(b"not gzip", "gzip"), Err(InflateError::Payload(_))));
        assert!(matches!(inflate(b"{}", "br"), Err(InflateError::Encoding(_))));
    }

    #[test]
    fn a_gzip_bomb_is_refused_at_the_cap() {
        let zeros = vec![0u8; usize::try_from(MAX_INFLATED_BYTES).unwrap_or(0) + 1];
        let bomb = gzip(&zeros);
        assert!(bomb.len() < 1024 * 1024);
        match inflate(&bomb, "gzip") {
            Err(InflateError::Payload(e)) => assert!(e.message.contains("more than"), "{}", e.message),
            other => panic!("expected a refusal, got {:?}", other.map(|b| b.len())),
        }
    }
}

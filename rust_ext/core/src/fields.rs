//! Reading consumed members: optional ones degrade to `None` with an `invalid_field`
//! finding (nztab-api.md §9.6), required ones fail with a schema error naming the path.
//! The messages are part of the contract with the Python reference (same text).

use std::borrow::Cow;

use crate::error::PayloadError;
use crate::json::{Kind, Scalar};
use crate::update::Finding;

/// A field path, formatted only when a message needs it: `base[index].field`.
#[derive(Debug, Clone, Copy)]
pub struct At<'a>(pub &'a str, pub &'a str);

impl std::fmt::Display for At<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.1.is_empty() {
            f.write_str(self.0)
        } else {
            write!(f, "{}.{}", self.0, self.1)
        }
    }
}

/// Largest value of an `int32` column.
pub const I32_MAX: i64 = 2_147_483_647;

/// Collected findings of one transform.
#[derive(Debug, Default)]
pub struct Findings(pub Vec<Finding>);

impl Findings {
    /// Adds a finding.
    pub fn add(&mut self, check: &'static str, level: &'static str, message: String, value: Option<f64>) {
        self.0.push(Finding { check, level, message, value });
    }

    /// Adds an `invalid_field` warning.
    pub fn invalid(&mut self, message: String) {
        self.add("invalid_field", "warning", message, None);
    }
}

/// Optional descriptive text: absent, null and "" are `None`.
pub fn opt_text<'a>(path: impl std::fmt::Display, v: Scalar<'a>, out: &mut Findings) -> Option<Cow<'a, str>> {
    match v {
        Scalar::Str(s) if s.is_empty() => None,
        Scalar::Str(s) => Some(s),
        Scalar::Absent | Scalar::Null => None,
        other => {
            out.invalid(format!("{path}: expected string, got {}", other.kind().name()));
            None
        }
    }
}

/// Text that is never null: absent or mistyped become "".
pub fn text_or_empty<'a>(path: impl std::fmt::Display, v: Scalar<'a>, out: &mut Findings) -> Cow<'a, str> {
    match v {
        Scalar::Str(s) => s,
        Scalar::Absent | Scalar::Null => Cow::Borrowed(""),
        other => {
            out.invalid(format!("{path}: expected string, got {}", other.kind().name()));
            Cow::Borrowed("")
        }
    }
}

/// An integer literal within `lo..=hi`, as a result that says why not.
fn int_in(v: &Scalar<'_>, lo: i64, hi: i64) -> Result<Option<i64>, String> {
    match *v {
        Scalar::Absent | Scalar::Null => Ok(None),
        Scalar::Int(i) if (lo..=hi).contains(&i) => Ok(Some(i)),
        Scalar::Int(_) | Scalar::BigInt(_) => Err("integer out of range".to_owned()),
        ref other => Err(format!("expected integer, got {}", other.kind().name())),
    }
}

/// Optional integer within `lo..=hi`.
pub fn opt_int(
    path: impl std::fmt::Display,
    v: &Scalar<'_>,
    lo: i64,
    hi: i64,
    out: &mut Findings,
) -> Option<i64> {
    int_in(v, lo, hi).unwrap_or_else(|why| {
        out.invalid(format!("{path}: {why}"));
        None
    })
}

/// Optional epoch seconds (`0` = none), returned in milliseconds.
pub fn opt_epoch_ms(path: impl std::fmt::Display, v: &Scalar<'_>, out: &mut Findings) -> Option<i64> {
    opt_int(path, v, 0, crate::numeric::MAX_EPOCH_S, out).filter(|&s| s != 0).map(|s| s * 1000)
}

/// A boolean flag: absent, null or mistyped are `false`.
pub fn flag(path: impl std::fmt::Display, v: &Scalar<'_>, out: &mut Findings) -> bool {
    match *v {
        Scalar::Bool(b) => b,
        Scalar::Absent | Scalar::Null => false,
        ref other => {
            out.invalid(format!("{path}: expected boolean, got {}", other.kind().name()));
            false
        }
    }
}

/// Reports a member that should be an object (absent and null are fine).
pub fn expect_object(path: impl std::fmt::Display, kind: Kind, out: &mut Findings) -> bool {
    expect_kind(path, kind, Kind::Object, out)
}

/// Reports a member that should be an array (absent and null are fine).
pub fn expect_array(path: impl std::fmt::Display, kind: Kind, out: &mut Findings) -> bool {
    expect_kind(path, kind, Kind::Array, out)
}

/// True when `kind` is `want`; an `invalid_field` finding when it is neither that nor missing.
fn expect_kind(path: impl std::fmt::Display, kind: Kind, want: Kind, out: &mut Findings) -> bool {
    if kind == want {
        return true;
    }
    if !kind.is_missing() {
        out.invalid(format!("{path}: expected {}, got {}", want.name(), kind.name()));
    }
    false
}

/// A required non-empty string.
///
/// # Errors
/// Schema error naming the path.
pub fn req_text<'a>(path: impl std::fmt::Display, v: Scalar<'a>) -> Result<Cow<'a, str>, PayloadError> {
    match v {
        Scalar::Str(s) if s.is_empty() => {
            Err(PayloadError::schema(format!("{path}: expected a non-empty string")))
        }
        Scalar::Str(s) => Ok(s),
        Scalar::Absent | Scalar::Null => Err(PayloadError::schema(format!("{path}: missing"))),
        other => Err(PayloadError::schema(format!("{path}: expected string, got {}", other.kind().name()))),
    }
}

/// A required integer within `lo..=hi`.
///
/// # Errors
/// Schema error naming the path.
pub fn req_int(path: impl std::fmt::Display, v: &Scalar<'_>, lo: i64, hi: i64) -> Result<i64, PayloadError> {
    match int_in(v, lo, hi) {
        Ok(Some(i)) => Ok(i),
        Ok(None) => Err(PayloadError::schema(format!("{path}: missing"))),
        Err(why) => Err(PayloadError::schema(format!("{path}: {why}"))),
    }
}

/// A required object.
///
/// # Errors
/// Schema error naming the path.
pub fn req_object(path: impl std::fmt::Display, kind: Kind) -> Result<(), PayloadError> {
    match kind {
        Kind::Object => Ok(()),
        Kind::Absent | Kind::Null => Err(PayloadError::schema(format!("{path}: missing"))),
        other => Err(PayloadError::schema(format!("{path}: expected object, got {}", other.name()))),
    }
}

/// Upstream race status to the internal vocabulary (nztab-api.md §6); the same table as
/// services/common/status.py. Whitespace is trimmed as Python's `str.strip` does.
#[must_use]
pub fn normalise_status(raw: Option<&str>) -> &'static str {
    let Some(raw) = raw else { return "unknown" };
    let trimmed = raw.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c));
    match trimmed.to_lowercase().as_str() {
        "open" => "open",
        "closed" | "running" => "closed",
        "interim" => "interim",
        "final" | "finalized" | "finalised" => "final",
        "abandoned" | "cancelled" | "canceled" => "abandoned",
        _ => "unknown",
    }
}

/// Terminal statuses: polling stops.
#[must_use]
pub fn is_terminal(status: &str) -> bool {
    matches!(status, "final" | "abandoned")
}

/// Maps a product name to one of the six single-race products (§2.1).
#[must_use]
pub fn product_index(name: &str) -> Option<usize> {
    let lowered: String = name.to_lowercase().chars().filter(|c| !matches!(c, ' ' | '_' | '-')).collect();
    let key = lowered.strip_prefix("pool").unwrap_or(&lowered);
    match key {
        "win" => Some(0),
        "place" => Some(1),
        "quinella" => Some(2),
        "trifecta" => Some(3),
        "exacta" => Some(4),
        "firstfour" | "first4" => Some(5),
        _ => None,
    }
}

/// Product names in total order.
pub const PRODUCTS: [&str; 6] = ["win", "place", "quinella", "trifecta", "exacta", "first4"];

/// Odds normalisation (§9.1): a number in (0, 10^7) whose hundredths are at least 1.
#[must_use]
pub fn odds_hundredths(v: &Scalar<'_>) -> Option<i64> {
    let x = v.as_f64()?;
    if x > 0.0 && x < 1e7 {
        crate::numeric::hundredths(x).ok().filter(|&h| h >= 1)
    } else {
        None
    }
}

/// Takes the first `n` characters of a message fragment.
#[must_use]
pub fn excerpt(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_containers_report_only_other_kinds() {
        let mut out = Findings::default();
        assert!(expect_object("o", Kind::Object, &mut out));
        assert!(expect_array("a", Kind::Array, &mut out));
        for missing in [Kind::Absent, Kind::Null] {
            assert!(!expect_object("o", missing, &mut out));
            assert!(!expect_array("a", missing, &mut out));
        }
        assert!(out.0.is_empty());
        assert!(!expect_object(At("x", "odds"), Kind::Array, &mut out));
        assert!(!expect_array("data.runners", Kind::String, &mut out));
        let messages: Vec<&str> = out.0.iter().map(|f| f.message.as_str()).collect();
        assert_eq!(
            messages,
            ["x.odds: expected object, got array", "data.runners: expected array, got string"]
        );
        assert!(out
            .0
            .iter()
            .all(|f| f.check == "invalid_field" && f.level == "warning" && f.value.is_none()));
    }
}

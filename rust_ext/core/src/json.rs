//! A strict, zero-copy JSON reader tuned for 400 KB TAB payloads.
//!
//! It accepts exactly what Python's `json.loads` accepts (RFC 8259 without NaN/Infinity, the
//! last of duplicate keys wins, integer literals of at most 4300 digits), so the extension and
//! the Python reference agree on which payloads are JSON. Consumed members are read into
//! lenient types that record what they saw ([`Scalar`], [`Items`], [`Json`] and structs
//! declared with `lenient_struct!`), so a wrong type becomes a finding or a schema error with
//! a field path rather than a parse failure. Everything else is validated and skipped without
//! allocating; whitespace runs and string bodies are scanned eight bytes at a time.

use std::borrow::Cow;

/// Deepest nesting accepted (Python's `json` stops near its recursion limit of 1000).
pub const MAX_DEPTH: usize = 800;
/// Longest integer literal Python converts (its `int_max_str_digits` default).
pub const MAX_INT_DIGITS: usize = 4300;

/// A syntax error: byte offset and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Byte offset in the payload.
    pub at: usize,
    /// What was expected or found.
    pub what: &'static str,
}

impl std::fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.what, self.at)
    }
}

type Res<T> = Result<T, SyntaxError>;

/// The JSON type of a value, or `Absent` when the member was not there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    /// The member does not exist.
    #[default]
    Absent,
    /// `null`.
    Null,
    /// `true` / `false`.
    Boolean,
    /// Any number.
    Number,
    /// A string.
    String,
    /// An array.
    Array,
    /// An object.
    Object,
}

impl Kind {
    /// The word used in messages ("got string").
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Kind::Absent => "nothing",
            Kind::Null => "null",
            Kind::Boolean => "boolean",
            Kind::Number => "number",
            Kind::String => "string",
            Kind::Array => "array",
            Kind::Object => "object",
        }
    }

    /// Absent or `null`: both mean "no value".
    #[must_use]
    pub fn is_missing(self) -> bool {
        matches!(self, Kind::Absent | Kind::Null)
    }
}

/// A scalar member: its value if it is a scalar, otherwise only its kind.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Scalar<'a> {
    /// The member does not exist.
    #[default]
    Absent,
    /// `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer literal that fits an `i64`.
    Int(i64),
    /// An integer literal outside the `i64` range (its text).
    BigInt(&'a str),
    /// A literal with a fraction or an exponent.
    Float(f64),
    /// A string.
    Str(Cow<'a, str>),
    /// An array (contents validated and skipped).
    Array,
    /// An object (contents validated and skipped).
    Object,
}

impl<'a> Scalar<'a> {
    /// The JSON type.
    #[must_use]
    pub fn kind(&self) -> Kind {
        match self {
            Scalar::Absent => Kind::Absent,
            Scalar::Null => Kind::Null,
            Scalar::Bool(_) => Kind::Boolean,
            Scalar::Int(_) | Scalar::BigInt(_) | Scalar::Float(_) => Kind::Number,
            Scalar::Str(_) => Kind::String,
            Scalar::Array => Kind::Array,
            Scalar::Object => Kind::Object,
        }
    }

    /// The value as a double if it is a number: integers to the nearest double (±inf beyond
    /// the double range), exactly as Python's `float(int)` with overflow mapped to infinity.
    #[must_use]
    #[allow(clippy::cast_precision_loss)] // nearest double is the intent
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Scalar::Int(i) => Some(*i as f64),
            Scalar::BigInt(text) => text.parse::<f64>().ok(),
            Scalar::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The string, if it is one.
    #[must_use]
    pub fn as_str(&self) -> Option<&Cow<'a, str>> {
        match self {
            Scalar::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// An array member: its elements if it is an array, otherwise only its kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Items<T> {
    /// The JSON type of the member.
    pub kind: Kind,
    /// The elements (empty unless `kind` is `Array`).
    pub items: Vec<T>,
}

impl<T> Default for Items<T> {
    fn default() -> Self {
        Self { kind: Kind::Absent, items: Vec::new() }
    }
}

/// A whole JSON value kept for output (results, dividends, runner_change), object members
/// in source order. Duplicate keys are kept here; lookups take the last one and the
/// conversion to a Python dict keeps the first position with the last value, as `json` does.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Json<'a> {
    /// The member does not exist.
    #[default]
    Missing,
    /// `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer literal that fits an `i64`.
    Int(i64),
    /// An integer literal outside the `i64` range (its text).
    BigInt(&'a str),
    /// A literal with a fraction or an exponent.
    Float(f64),
    /// A string.
    Str(Cow<'a, str>),
    /// An array.
    Array(Vec<Json<'a>>),
    /// An object, members in source order.
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

impl<'a> Json<'a> {
    /// The JSON type.
    #[must_use]
    pub fn kind(&self) -> Kind {
        match self {
            Json::Missing => Kind::Absent,
            Json::Null => Kind::Null,
            Json::Bool(_) => Kind::Boolean,
            Json::Int(_) | Json::BigInt(_) | Json::Float(_) => Kind::Number,
            Json::Str(_) => Kind::String,
            Json::Array(_) => Kind::Array,
            Json::Object(_) => Kind::Object,
        }
    }

    /// The member `key` of an object (the last one if repeated).
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&Json<'a>> {
        match self {
            Json::Object(members) => members.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string, if it is one.
    #[must_use]
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a double if it is a number (see [`Scalar::as_f64`]).
    #[must_use]
    #[allow(clippy::cast_precision_loss)] // nearest double is the intent
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Json::Int(i) => Some(*i as f64),
            Json::BigInt(text) => text.parse::<f64>().ok(),
            Json::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The value if it is an integer literal that fits an `i64`.
    #[must_use]
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Json::Int(i) => Some(i),
            _ => None,
        }
    }

    /// True when no float anywhere inside is infinite.
    #[must_use]
    pub fn is_finite(&self) -> bool {
        match self {
            Json::Float(f) => f.is_finite(),
            Json::Array(items) => items.iter().all(Json::is_finite),
            Json::Object(members) => members.iter().all(|(_, v)| v.is_finite()),
            _ => true,
        }
    }
}

fn fail<T>(at: usize, what: &'static str) -> Res<T> {
    Err(SyntaxError { at, what })
}

/// Position of the first non-whitespace byte at or after `pos` (or the end).
#[inline(always)]
fn skip_ws(b: &[u8], pos: usize) -> usize {
    match b.get(pos) {
        Some(&c) if c > b' ' => pos,
        _ => skip_ws_run(b, pos),
    }
}

/// Position of the first quote, backslash or control byte at or after `pos` (or the end).
#[inline(always)]
fn string_run(b: &[u8], pos: usize) -> usize {
    simd16::string_run(b, pos)
}

#[inline(always)]
fn skip_ws_run(b: &[u8], pos: usize) -> usize {
    simd16::skip_ws_run(b, pos)
}

fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\n' | b'\r' | b'\t')
}

fn ends_string_run(c: u8) -> bool {
    c == b'"' || c == b'\\' || c < 0x20
}

/// Sixteen bytes at a time with SSE2 (part of every x86_64 CPU).
#[cfg(target_arch = "x86_64")]
mod simd16 {
    use super::{ends_string_run, is_ws};
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };

    /// Bit i set when byte i of the 16 at `at` is not JSON whitespace; `None` near the end.
    #[inline(always)]
    fn non_whitespace16(b: &[u8], at: usize) -> Option<u32> {
        let chunk = b.get(at..at + 16)?;
        // SAFETY: `chunk` holds 16 readable bytes for the unaligned load; SSE2 is part of the
        // x86_64 baseline, so every intrinsic here is supported.
        let ws = unsafe {
            let v = _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>());
            let space = _mm_cmpeq_epi8(v, _mm_set1_epi8(b' ' as i8));
            let newline = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\n' as i8));
            let cr = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\r' as i8));
            let tab = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\t' as i8));
            _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(space, newline), _mm_or_si128(cr, tab))) as u32
        };
        Some(!ws & 0xFFFF)
    }

    /// Bit i set when byte i of the 16 at `at` ends a string run; `None` near the end.
    #[inline(always)]
    fn string_stops16(b: &[u8], at: usize) -> Option<u32> {
        let chunk = b.get(at..at + 16)?;
        // SAFETY: as in `non_whitespace16`.
        let hits = unsafe {
            let v = _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>());
            let limit = _mm_set1_epi8(0x1F);
            let control = _mm_cmpeq_epi8(_mm_max_epu8(v, limit), limit);
            let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
            let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
            _mm_movemask_epi8(_mm_or_si128(control, _mm_or_si128(quote, backslash))) as u32
        };
        Some(hits)
    }

    #[inline(always)]
    pub(super) fn skip_ws_run(b: &[u8], mut pos: usize) -> usize {
        while let Some(other) = non_whitespace16(b, pos) {
            if other != 0 {
                return pos + other.trailing_zeros() as usize;
            }
            pos += 16;
        }
        while b.get(pos).is_some_and(|&c| is_ws(c)) {
            pos += 1;
        }
        pos
    }

    #[inline(always)]
    pub(super) fn string_run(b: &[u8], mut pos: usize) -> usize {
        while let Some(hits) = string_stops16(b, pos) {
            if hits != 0 {
                return pos + hits.trailing_zeros() as usize;
            }
            pos += 16;
        }
        while b.get(pos).is_some_and(|&c| !ends_string_run(c)) {
            pos += 1;
        }
        pos
    }
}

/// Eight bytes at a time in a `u64`: the portable version (used where SSE2 is not known to
/// exist, and checked against the SSE2 one in the tests).
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
mod swar {
    use super::{ends_string_run, is_ws};

    const SPACES: u64 = 0x2020_2020_2020_2020;
    const QUOTES: u64 = 0x2222_2222_2222_2222;
    const BACKSLASHES: u64 = 0x5C5C_5C5C_5C5C_5C5C;
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;

    /// High bit set in each byte of `w` that is zero (exact for the lowest such byte).
    fn zero_bytes(w: u64) -> u64 {
        w.wrapping_sub(ONES) & !w & HIGHS
    }

    fn word(b: &[u8], at: usize) -> Option<u64> {
        b.get(at..at + 8).and_then(|c| c.try_into().ok()).map(u64::from_le_bytes)
    }

    pub(super) fn skip_ws_run(b: &[u8], mut pos: usize) -> usize {
        loop {
            if let Some(w) = word(b, pos) {
                let x = w ^ SPACES;
                if x == 0 {
                    pos += 8;
                    continue;
                }
                pos += (x.trailing_zeros() / 8) as usize;
            }
            if b.get(pos).is_some_and(|&c| is_ws(c)) {
                pos += 1;
            } else {
                return pos;
            }
        }
    }

    pub(super) fn string_run(b: &[u8], mut pos: usize) -> usize {
        while let Some(w) = word(b, pos) {
            let hits =
                zero_bytes(w ^ QUOTES) | zero_bytes(w ^ BACKSLASHES) | (w.wrapping_sub(SPACES) & !w & HIGHS);
            if hits != 0 {
                return pos + (hits.trailing_zeros() / 8) as usize;
            }
            pos += 8;
        }
        while b.get(pos).is_some_and(|&c| !ends_string_run(c)) {
            pos += 1;
        }
        pos
    }
}

#[cfg(not(target_arch = "x86_64"))]
use swar as simd16;

fn hex4(b: &[u8], at: usize) -> Option<u32> {
    let digits = b.get(at..at + 4)?;
    let mut v = 0u32;
    for &d in digits {
        v = v * 16 + char::from(d).to_digit(16)?;
    }
    Some(v)
}

/// Decodes the escape at `pos` (a backslash): the char and the position after it.
fn escape(b: &[u8], pos: usize) -> Res<(char, usize)> {
    let c = match b.get(pos + 1) {
        Some(b'"') => '"',
        Some(b'\\') => '\\',
        Some(b'/') => '/',
        Some(b'b') => '\u{8}',
        Some(b'f') => '\u{c}',
        Some(b'n') => '\n',
        Some(b'r') => '\r',
        Some(b't') => '\t',
        Some(b'u') => {
            let Some(unit) = hex4(b, pos + 2) else { return fail(pos, "invalid \\u escape") };
            if (0xDC00..=0xDFFF).contains(&unit) {
                return fail(pos, "unpaired surrogate escape");
            }
            if (0xD800..=0xDBFF).contains(&unit) {
                let low = if b.get(pos + 6) == Some(&b'\\') && b.get(pos + 7) == Some(&b'u') {
                    hex4(b, pos + 8)
                } else {
                    None
                };
                let Some(low @ 0xDC00..=0xDFFF) = low else { return fail(pos, "unpaired surrogate escape") };
                let code = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                return char::from_u32(code)
                    .map_or_else(|| fail(pos, "invalid \\u escape"), |c| Ok((c, pos + 12)));
            }
            return char::from_u32(unit)
                .map_or_else(|| fail(pos, "invalid \\u escape"), |c| Ok((c, pos + 6)));
        }
        _ => return fail(pos, "invalid escape"),
    };
    Ok((c, pos + 2))
}

/// Skips a string body (`pos` just after the opening quote); returns the position after
/// the closing quote.
#[inline(always)]
fn skip_string_body(b: &[u8], mut pos: usize) -> Res<usize> {
    loop {
        pos = string_run(b, pos);
        match b.get(pos) {
            Some(b'"') => return Ok(pos + 1),
            Some(b'\\') => pos = escape(b, pos)?.1,
            Some(_) => return fail(pos, "control character in string"),
            None => return fail(pos, "unterminated string"),
        }
    }
}

/// Scans a number at `pos`: its end and whether it is an integer literal.
#[inline(always)]
fn scan_number(b: &[u8], start: usize) -> Res<(usize, bool)> {
    let mut pos = start;
    if b.get(pos) == Some(&b'-') {
        pos += 1;
    }
    let digits_from = |mut p: usize| {
        while b.get(p).is_some_and(u8::is_ascii_digit) {
            p += 1;
        }
        p
    };
    match b.get(pos) {
        Some(b'0') => pos += 1,
        Some(b'1'..=b'9') => {
            let end = digits_from(pos + 1);
            if end - pos > MAX_INT_DIGITS && !matches!(b.get(end), Some(b'.' | b'e' | b'E')) {
                // Python refuses to convert longer integer literals (int_max_str_digits).
                return fail(start, "integer literal longer than 4300 digits");
            }
            pos = end;
        }
        _ => return fail(start, "invalid number"),
    }
    let mut integer = true;
    if b.get(pos) == Some(&b'.') && b.get(pos + 1).is_some_and(u8::is_ascii_digit) {
        pos = digits_from(pos + 1);
        integer = false;
    }
    if matches!(b.get(pos), Some(b'e' | b'E')) {
        let mut p = pos + 1;
        if matches!(b.get(p), Some(b'+' | b'-')) {
            p += 1;
        }
        let end = digits_from(p);
        // Without exponent digits Python's scanner stops before the `e`, which is then a
        // syntax error wherever a number can appear.
        if end > p {
            pos = end;
            integer = false;
        }
    }
    Ok((pos, integer))
}

#[inline(always)]
fn literal(b: &[u8], pos: usize, word: &'static str) -> Res<usize> {
    if b.get(pos..pos + word.len()) == Some(word.as_bytes()) {
        Ok(pos + word.len())
    } else {
        fail(pos, "invalid literal")
    }
}

/// Low-nibble half of the table of bytes allowed outside strings: a byte `c` is allowed when
/// `LEX_LO[c & 15] & LEX_HI[c >> 4] != 0`. Allowed: whitespace, `" , : [ ] { }`, digits,
/// `- + . e E` and the letters of `true`, `false` and `null`.
const LEX_LO: [u8; 16] =
    [0x06, 0x24, 0x46, 0x44, 0x44, 0x6C, 0x24, 0x04, 0x04, 0x05, 0x05, 0x52, 0x22, 0x53, 0x22, 0x00];
/// High-nibble half (one class bit per high nibble 0, 2, 3, 4, 5, 6, 7).
const LEX_HI: [u8; 16] = [0x01, 0x00, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0, 0, 0, 0, 0, 0, 0, 0];

/// Bit masks of one 64-byte block (bit i = byte i).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Masks {
    quote: u64,
    backslash: u64,
    open: u64,
    close: u64,
    control: u64,
    illegal: u64,
}

fn classify_scalar(block: &[u8; 64]) -> Masks {
    let mut m = Masks::default();
    for (i, &c) in block.iter().enumerate() {
        let bit = 1u64 << i;
        match c {
            b'"' => m.quote |= bit,
            b'\\' => m.backslash |= bit,
            b'{' | b'[' => m.open |= bit,
            b'}' | b']' => m.close |= bit,
            _ => {}
        }
        if c < 0x20 {
            m.control |= bit;
        }
        if LEX_LO[usize::from(c & 15)] & LEX_HI[usize::from(c >> 4)] == 0 {
            m.illegal |= bit;
        }
    }
    m
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Masks, LEX_HI, LEX_LO};
    use std::arch::x86_64::{
        __m256i, _mm256_and_si256, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_max_epu8,
        _mm256_movemask_epi8, _mm256_or_si256, _mm256_set1_epi8, _mm256_setzero_si256, _mm256_shuffle_epi8,
        _mm256_srli_epi16,
    };

    /// Whether this CPU can run [`classify`].
    pub fn available() -> bool {
        static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVAILABLE.get_or_init(|| std::is_x86_feature_detected!("avx2"))
    }

    #[inline(always)]
    fn table(t: &[u8; 16]) -> [u8; 32] {
        let mut out = [0u8; 32];
        out[..16].copy_from_slice(t);
        out[16..].copy_from_slice(t);
        out
    }

    /// True when no byte has its high bit set (128 bytes per iteration).
    ///
    /// # Safety
    /// The CPU must support AVX2 ([`available`]).
    #[target_feature(enable = "avx2")]
    pub unsafe fn is_ascii(b: &[u8]) -> bool {
        let mut chunks = b.chunks_exact(128);
        for chunk in &mut chunks {
            let p = chunk.as_ptr().cast::<__m256i>();
            // SAFETY: `chunk` holds 128 readable bytes: four unaligned 32-byte loads.
            let any = unsafe {
                _mm256_or_si256(
                    _mm256_or_si256(_mm256_loadu_si256(p), _mm256_loadu_si256(p.add(1))),
                    _mm256_or_si256(_mm256_loadu_si256(p.add(2)), _mm256_loadu_si256(p.add(3))),
                )
            };
            if _mm256_movemask_epi8(any) != 0 {
                return false;
            }
        }
        chunks.remainder().is_ascii()
    }

    /// The masks of one block, 32 bytes per instruction.
    ///
    /// # Safety
    /// The CPU must support AVX2 ([`available`]).
    #[target_feature(enable = "avx2")]
    #[inline]
    pub unsafe fn classify(block: &[u8; 64]) -> Masks {
        // SAFETY (whole body): `block` is 64 readable bytes; the loads are unaligned loads of
        // its two halves, and AVX2 is present per the caller's contract.
        let halves: [__m256i; 2] = [
            _mm256_loadu_si256(block.as_ptr().cast::<__m256i>()),
            _mm256_loadu_si256(block.as_ptr().add(32).cast::<__m256i>()),
        ];
        let lo_table = table(&LEX_LO);
        let hi_table = table(&LEX_HI);
        let lut_lo = _mm256_loadu_si256(lo_table.as_ptr().cast::<__m256i>());
        let lut_hi = _mm256_loadu_si256(hi_table.as_ptr().cast::<__m256i>());
        let nibble = _mm256_set1_epi8(0x0F);
        let zero = _mm256_setzero_si256();
        let mut m = Masks::default();
        for (half, v) in halves.iter().enumerate() {
            let v = *v;
            let shift = 32 * half;
            let bits = |x: __m256i| u64::from(_mm256_movemask_epi8(x) as u32) << shift;
            let eq = |c: u8| _mm256_cmpeq_epi8(v, _mm256_set1_epi8(c as i8));
            m.quote |= bits(eq(b'"'));
            m.backslash |= bits(eq(b'\\'));
            m.open |= bits(_mm256_or_si256(eq(b'{'), eq(b'[')));
            m.close |= bits(_mm256_or_si256(eq(b'}'), eq(b']')));
            let limit = _mm256_set1_epi8(0x1F);
            m.control |= bits(_mm256_cmpeq_epi8(_mm256_max_epu8(v, limit), limit));
            let lo = _mm256_shuffle_epi8(lut_lo, _mm256_and_si256(v, nibble));
            let hi = _mm256_shuffle_epi8(lut_hi, _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble));
            m.illegal |= bits(_mm256_cmpeq_epi8(_mm256_and_si256(lo, hi), zero));
        }
        m
    }
}

/// How a block is classified; the block scan is compiled once per implementation so the
/// AVX2 one is inlined into a loop compiled with AVX2 enabled.
trait Classify {
    fn classify(block: &[u8; 64]) -> Masks;
}

struct Scalar64;

impl Classify for Scalar64 {
    #[inline(always)]
    fn classify(block: &[u8; 64]) -> Masks {
        classify_scalar(block)
    }
}

#[cfg(target_arch = "x86_64")]
struct Avx2;

#[cfg(target_arch = "x86_64")]
impl Classify for Avx2 {
    #[inline(always)]
    fn classify(block: &[u8; 64]) -> Masks {
        // SAFETY: only reached through `skip_container_avx2`, which runs after the check.
        unsafe { avx2::classify(block) }
    }
}

/// The block scan compiled with AVX2 enabled.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn skip_container_avx2(b: &[u8], start: usize, depth: usize) -> Res<usize> {
    scan_container::<Avx2>(b, start, depth)
}

fn skip_container(b: &[u8], start: usize, depth: usize) -> Res<usize> {
    #[cfg(target_arch = "x86_64")]
    if avx2::available() {
        // SAFETY: AVX2 support was just checked.
        return unsafe { skip_container_avx2(b, start, depth) };
    }
    scan_container::<Scalar64>(b, start, depth)
}

/// Inclusive prefix XOR: bit i = XOR of bits 0..=i.
#[inline(always)]
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// Skips the container (`{` or `[`) at `start` with a block scan: strings (escapes, no
/// control characters), bracket nesting and matching, and only JSON characters outside
/// strings are checked; the token grammar between them is not (members read by the
/// transform go through the full parser). Returns the position after the closing bracket.
#[inline(always)]
fn scan_container<C: Classify>(b: &[u8], start: usize, depth: usize) -> Res<usize> {
    let mut kinds = [0u64; MAX_DEPTH / 64 + 1];
    let mut open = 0usize;
    let mut in_string = 0u64; // all ones while a string continues into the next block
    let mut escape_carry = false; // the next block's first byte is escaped
    let mut base = start;
    while base < b.len() {
        let block: [u8; 64] = match b.get(base..base + 64).and_then(|s| s.try_into().ok()) {
            Some(full) => full,
            None => {
                let mut padded = [b' '; 64];
                padded[..b.len() - base].copy_from_slice(&b[base..]);
                padded
            }
        };
        let m = C::classify(&block);
        // Escaped bytes: walk the (rare) backslashes in order.
        let mut escaped = u64::from(escape_carry);
        escape_carry = false;
        let mut escapes = 0u64;
        let mut bs = m.backslash;
        while bs != 0 {
            let i = bs.trailing_zeros();
            bs &= bs - 1;
            if escaped & (1u64 << i) == 0 {
                escapes |= 1u64 << i;
                if i == 63 {
                    escape_carry = true;
                } else {
                    escaped |= 1u64 << (i + 1);
                }
            }
        }
        let quotes = m.quote & !escaped;
        let strings = prefix_xor(quotes) ^ in_string;
        in_string = ((strings as i64) >> 63) as u64;
        let opens = m.open & !strings;
        let closes = m.close & !strings;
        // Walk the brackets in order; stop at the one that closes the container.
        let mut end: Option<u32> = None;
        let mut brackets = opens | closes;
        while brackets != 0 {
            let i = brackets.trailing_zeros();
            brackets &= brackets - 1;
            let at = base + i as usize;
            if opens & (1u64 << i) != 0 {
                if depth + open + 1 > MAX_DEPTH {
                    return fail(at, "nesting too deep");
                }
                let bit = 1u64 << (open % 64);
                if block[i as usize] == b'{' {
                    kinds[open / 64] |= bit;
                } else {
                    kinds[open / 64] &= !bit;
                }
                open += 1;
            } else {
                let Some(top) = open.checked_sub(1) else { return fail(at, "unbalanced bracket") };
                let is_object = kinds[top / 64] & (1u64 << (top % 64)) != 0;
                if is_object != (block[i as usize] == b'}') {
                    return fail(at, "mismatched bracket");
                }
                open = top;
                if open == 0 {
                    end = Some(i);
                    break;
                }
            }
        }
        // Only the bytes up to the end of the container count.
        let within = match end {
            Some(63) | None => u64::MAX,
            Some(i) => (1u64 << (i + 1)) - 1,
        };
        let bad = ((m.control & strings) | (m.illegal & !strings) | (escapes & !strings)) & within;
        if bad != 0 {
            let at = base + bad.trailing_zeros() as usize;
            return fail(
                at,
                if strings & (1u64 << bad.trailing_zeros()) != 0 {
                    "control character in string"
                } else {
                    "invalid character"
                },
            );
        }
        let mut e = escapes & strings & within;
        while e != 0 {
            let i = e.trailing_zeros();
            e &= e - 1;
            escape(b, base + i as usize)?;
        }
        if let Some(i) = end {
            return Ok(base + i as usize + 1);
        }
        base += 64;
    }
    fail(b.len(), "unterminated value")
}

/// The cursor over a payload known to be valid UTF-8.
pub struct Cursor<'a> {
    text: &'a str,
    b: &'a [u8],
    pos: usize,
    depth: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `text`.
    #[must_use]
    pub fn new(text: &'a str) -> Self {
        Self { text, b: text.as_bytes(), pos: 0, depth: 0 }
    }

    fn err<T>(&self, what: &'static str) -> Res<T> {
        fail(self.pos, what)
    }

    /// Skips JSON whitespace.
    #[inline]
    pub fn ws(&mut self) {
        self.pos = skip_ws(self.b, self.pos);
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    /// Fails unless only whitespace remains.
    ///
    /// # Errors
    /// On trailing data.
    pub fn end(&mut self) -> Res<()> {
        self.ws();
        if self.pos == self.b.len() {
            Ok(())
        } else {
            self.err("extra data after the JSON value")
        }
    }

    fn enter(&mut self) -> Res<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.err("nesting too deep");
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// Reads a string (cursor on the opening quote), borrowing unless it has escapes.
    fn string(&mut self) -> Res<Cow<'a, str>> {
        let start = self.pos + 1;
        let mut pos = string_run(self.b, start);
        if self.b.get(pos) == Some(&b'"') {
            self.pos = pos + 1;
            return Ok(Cow::Borrowed(&self.text[start..pos]));
        }
        let mut owned = String::from(&self.text[start..pos]);
        loop {
            match self.b.get(pos) {
                Some(b'"') => {
                    self.pos = pos + 1;
                    return Ok(Cow::Owned(owned));
                }
                Some(b'\\') => {
                    let (c, next) = escape(self.b, pos)?;
                    owned.push(c);
                    pos = next;
                }
                Some(_) => return fail(pos, "control character in string"),
                None => return fail(pos, "unterminated string"),
            }
            let run = pos;
            pos = string_run(self.b, pos);
            owned.push_str(&self.text[run..pos]);
        }
    }

    /// Validates and skips one value of any type.
    ///
    /// # Errors
    /// On any syntax error.
    pub fn skip_value(&mut self) -> Res<()> {
        let (b, pos) = (self.b, self.pos);
        self.pos = match b.get(pos) {
            Some(b'"') => skip_string_body(b, pos + 1)?,
            Some(b'{' | b'[') => skip_container(b, pos, self.depth)?,
            Some(b'-' | b'0'..=b'9') => scan_number(b, pos)?.0,
            Some(b't') => literal(b, pos, "true")?,
            Some(b'f') => literal(b, pos, "false")?,
            Some(b'n') => literal(b, pos, "null")?,
            _ => return self.err("expecting a value"),
        };
        Ok(())
    }

    fn colon(&mut self) -> Res<()> {
        self.ws();
        if self.peek() != Some(b':') {
            return self.err("expecting ':'");
        }
        self.pos += 1;
        Ok(())
    }

    fn literal(&mut self, word: &'static str) -> Res<()> {
        self.pos = literal(self.b, self.pos, word)?;
        Ok(())
    }

    /// The kind of the next value (after whitespace); `None` at the end of input.
    pub fn peek_kind(&mut self) -> Option<Kind> {
        self.ws();
        Some(match self.peek()? {
            b'"' => Kind::String,
            b'{' => Kind::Object,
            b'[' => Kind::Array,
            b't' | b'f' => Kind::Boolean,
            b'n' => Kind::Null,
            _ => Kind::Number,
        })
    }

    /// Iterates the members of the object at the cursor, calling `member` with each key;
    /// `member` must consume the value.
    ///
    /// # Errors
    /// On syntax errors or errors from `member`.
    pub fn object(&mut self, mut member: impl FnMut(&mut Self, Cow<'a, str>) -> Res<()>) -> Res<()> {
        self.container(b'}', "expecting ',' or '}'", |c| {
            if c.peek() != Some(b'"') {
                return c.err("expecting a property name");
            }
            let key = c.string()?;
            c.colon()?;
            c.ws();
            member(c, key)
        })
    }

    /// Iterates the elements of the array at the cursor; `element` must consume each.
    ///
    /// # Errors
    /// On syntax errors or errors from `element`.
    pub fn array(&mut self, element: impl FnMut(&mut Self) -> Res<()>) -> Res<()> {
        self.container(b']', "expecting ',' or ']'", element)
    }

    /// The walk shared by objects and arrays (cursor on the opening bracket): `entry` reads
    /// one entry (whitespace before it skipped), entries are separated by commas and the
    /// container ends at `close`.
    #[inline(always)]
    fn container(
        &mut self,
        close: u8,
        expecting: &'static str,
        mut entry: impl FnMut(&mut Self) -> Res<()>,
    ) -> Res<()> {
        self.enter()?;
        self.pos += 1;
        self.ws();
        if self.peek() == Some(close) {
            self.pos += 1;
            self.leave();
            return Ok(());
        }
        loop {
            self.ws();
            entry(self)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(c) if c == close => {
                    self.pos += 1;
                    self.leave();
                    return Ok(());
                }
                _ => return self.err(expecting),
            }
        }
    }

    /// Validates and skips a value that is not read, returning its kind (`Absent` at the end
    /// of input, where the skip then fails).
    ///
    /// # Errors
    /// On any syntax error.
    pub fn skip_kind(&mut self) -> Res<Kind> {
        let kind = self.peek_kind().unwrap_or(Kind::Absent);
        self.skip_value()?;
        Ok(kind)
    }

    /// Reads a number as a scalar.
    fn number_scalar(&mut self) -> Res<Scalar<'a>> {
        let start = self.pos;
        let (end, integer) = scan_number(self.b, start)?;
        self.pos = end;
        let text = &self.text[start..end];
        Ok(if integer {
            text.parse::<i64>().map_or(Scalar::BigInt(text), Scalar::Int)
        } else {
            match text.parse::<f64>() {
                Ok(f) => Scalar::Float(f),
                Err(_) => return fail(start, "invalid number"),
            }
        })
    }
}

/// A value that can be read from the cursor, leniently (any JSON is accepted).
pub trait FromJson<'a>: Sized + Default {
    /// Reads one value at the cursor (whitespace already skipped).
    ///
    /// # Errors
    /// Only on syntax errors.
    fn read(c: &mut Cursor<'a>) -> Res<Self>;
}

impl<'a> FromJson<'a> for Scalar<'a> {
    fn read(c: &mut Cursor<'a>) -> Res<Self> {
        Ok(match c.peek() {
            Some(b'"') => Scalar::Str(c.string()?),
            Some(b'{') => {
                c.skip_value()?;
                Scalar::Object
            }
            Some(b'[') => {
                c.skip_value()?;
                Scalar::Array
            }
            Some(b't') => {
                c.literal("true")?;
                Scalar::Bool(true)
            }
            Some(b'f') => {
                c.literal("false")?;
                Scalar::Bool(false)
            }
            Some(b'n') => {
                c.literal("null")?;
                Scalar::Null
            }
            Some(b'-' | b'0'..=b'9') => c.number_scalar()?,
            _ => return c.err("expecting a value"),
        })
    }
}

impl<'a, T: FromJson<'a>> FromJson<'a> for Items<T> {
    fn read(c: &mut Cursor<'a>) -> Res<Self> {
        if c.peek() != Some(b'[') {
            return Ok(Items { kind: c.skip_kind()?, items: Vec::new() });
        }
        let mut items = Vec::new();
        c.array(|c| {
            items.push(T::read(c)?);
            Ok(())
        })?;
        Ok(Items { kind: Kind::Array, items })
    }
}

impl<'a> FromJson<'a> for Json<'a> {
    fn read(c: &mut Cursor<'a>) -> Res<Self> {
        Ok(match c.peek() {
            Some(b'{') => {
                let mut members = Vec::new();
                c.object(|c, key| {
                    members.push((key, Json::read(c)?));
                    Ok(())
                })?;
                Json::Object(members)
            }
            Some(b'[') => {
                let mut items = Vec::new();
                c.array(|c| {
                    items.push(Json::read(c)?);
                    Ok(())
                })?;
                Json::Array(items)
            }
            _ => match Scalar::read(c)? {
                Scalar::Null | Scalar::Absent | Scalar::Array | Scalar::Object => Json::Null,
                Scalar::Bool(b) => Json::Bool(b),
                Scalar::Int(i) => Json::Int(i),
                Scalar::BigInt(t) => Json::BigInt(t),
                Scalar::Float(f) => Json::Float(f),
                Scalar::Str(s) => Json::Str(s),
            },
        })
    }
}

/// The payload as text: a fast all-ASCII check first (TAB payloads are ASCII), the full UTF-8
/// validation only when a byte above 0x7F appears.
///
/// # Errors
/// When the bytes are not UTF-8.
pub fn utf8(b: &[u8]) -> Result<&str, std::str::Utf8Error> {
    #[cfg(target_arch = "x86_64")]
    if avx2::available() {
        // SAFETY: AVX2 support was just checked.
        if unsafe { avx2::is_ascii(b) } {
            // SAFETY: every byte is below 0x80, and ASCII is valid UTF-8.
            return Ok(unsafe { std::str::from_utf8_unchecked(b) });
        }
    }
    std::str::from_utf8(b)
}

/// Reads a whole document: `T` at the root, then nothing but whitespace.
///
/// # Errors
/// On any syntax error.
pub fn read_document<'a, T: FromJson<'a>>(text: &'a str) -> Res<T> {
    let mut c = Cursor::new(text);
    c.ws();
    let value = T::read(&mut c)?;
    c.end()?;
    Ok(value)
}

/// Declares a struct read leniently from a JSON object: named members are read with their
/// own lenient types, others validated and skipped; a non-object leaves every member at its
/// default and records the kind in `kind`. The last of duplicate keys wins.
macro_rules! lenient_struct {
    ($(#[$meta:meta])* $vis:vis struct $name:ident<$lt:lifetime> {
        $($(#[$fmeta:meta])* $field:ident : $ty:ty => $key:literal),* $(,)?
    }) => {
        $(#[$meta])*
        #[derive(Debug, Default)]
        $vis struct $name<$lt> {
            /// The JSON type of the value (`Object` when the members were read).
            pub kind: $crate::json::Kind,
            $($(#[$fmeta])* pub $field: $ty,)*
            _borrow: ::std::marker::PhantomData<&$lt ()>,
        }

        impl<$lt> $crate::json::FromJson<$lt> for $name<$lt> {
            fn read(c: &mut $crate::json::Cursor<$lt>) -> Result<Self, $crate::json::SyntaxError> {
                let mut out = Self::default();
                if c.peek_kind() != Some($crate::json::Kind::Object) {
                    out.kind = c.skip_kind()?;
                    return Ok(out);
                }
                out.kind = $crate::json::Kind::Object;
                c.object(|c, key| {
                    match key.as_ref() {
                        $($key => out.$field = $crate::json::FromJson::read(c)?,)*
                        _ => c.skip_value()?,
                    }
                    Ok(())
                })?;
                Ok(out)
            }
        }
    };
}

pub(crate) use lenient_struct;

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(text: &str) -> Res<Scalar<'_>> {
        read_document::<Scalar<'_>>(text)
    }

    #[test]
    fn reads_scalars_like_python() {
        assert_eq!(scalar("-0"), Ok(Scalar::Int(0)));
        assert_eq!(scalar("1.5e2"), Ok(Scalar::Float(150.0)));
        assert_eq!(scalar("1e400"), Ok(Scalar::Float(f64::INFINITY)));
        assert_eq!(scalar("18446744073709551616"), Ok(Scalar::BigInt("18446744073709551616")));
        assert_eq!(scalar(r#""a\u00e9\ud83d\ude00""#), Ok(Scalar::Str(Cow::Owned("aé😀".into()))));
        assert_eq!(scalar(" [1, {\"a\": [true, null]}] "), Ok(Scalar::Array));
    }

    #[test]
    fn the_full_parser_rejects_what_python_rejects() {
        for bad in [
            "",
            "01",
            "1.",
            ".5",
            "-",
            "+1",
            "1e",
            "NaN",
            "Infinity",
            "[1,]",
            "{\"a\":1,}",
            "{a:1}",
            "[1 2]",
            "\"\\ud800\"",
            "\"\\udc00x\"",
            "\"\t\"",
            "\"\\x\"",
            "tru",
            "[",
            "{\"a\" 1}",
            "1 2",
        ] {
            assert!(read_document::<Json<'_>>(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(read_document::<Json<'_>>(&"1".repeat(4301)).is_err());
        assert!(read_document::<Json<'_>>(&"1".repeat(4300)).is_ok());
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(read_document::<Json<'_>>(&deep).is_err());
    }

    #[test]
    fn skipped_containers_get_a_structural_check() {
        // Rejected: broken strings, brackets and characters that cannot appear in JSON.
        for bad in [
            "[",
            "[1}",
            "{\"a\": [}",
            "[\"abc]",
            "[NaN]",
            "[Infinity]",
            "['a']",
            "[1]]",
            "{\"a\": \"\\q\"}",
            "[\"\\ud800\"]",
            "[\"a\u{1}b\"]",
            "[<html>]",
            "[\\]",
        ] {
            assert!(read_document::<Scalar<'_>>(bad).is_err(), "{bad:?} should be rejected");
        }
        // Accepted by the block scan although not JSON: token grammar is not checked here.
        for loose in ["[1 2]", "[1,]", "{\"a\" 1}", "[tru]"] {
            assert!(read_document::<Scalar<'_>>(loose).is_ok(), "{loose:?} passes the block scan");
        }
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(read_document::<Scalar<'_>>(&deep).is_err());
        // Strings, escapes and brackets that straddle 64-byte blocks.
        let long = format!(
            "{{\"k\": [\"{}\\\"]\", {{\"x\": \"{}\\\\\"}}], \"z\": 1}}",
            "a".repeat(62),
            "]".repeat(70)
        );
        assert_eq!(read_document::<Scalar<'_>>(&long), Ok(Scalar::Object));
    }

    #[test]
    fn the_sse2_and_portable_scanners_agree() {
        let samples = [
            " \n\t\r   x",
            "                                  \"",
            "abc\"def",
            "a\\b",
            "tab\there",
            "",
            "                ",
            "0123456789abcdef0123456789\"",
            "\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\"",
        ];
        for text in samples {
            let b = text.as_bytes();
            for start in 0..=b.len() {
                assert_eq!(swar::skip_ws_run(b, start), simd16::skip_ws_run(b, start), "{text:?} {start}");
                assert_eq!(swar::string_run(b, start), simd16::string_run(b, start), "{text:?} {start}");
            }
        }
    }

    #[test]
    fn the_avx2_and_portable_block_classifiers_agree() {
        #[cfg(target_arch = "x86_64")]
        if avx2::available() {
            // Every byte value appears in some block, in varying positions.
            let mut seed = 0x9E37_79B9_7F4A_7C15u64;
            for round in 0..64 {
                let mut block = [0u8; 64];
                for (i, byte) in block.iter_mut().enumerate() {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    *byte = if round < 4 { (round * 64 + i) as u8 } else { (seed >> 56) as u8 };
                }
                // SAFETY: AVX2 support was just checked.
                let fast = unsafe { avx2::classify(&block) };
                assert_eq!(fast, classify_scalar(&block), "block {block:?}");
            }
        }
    }

    #[test]
    fn unread_members_keep_their_kind() -> Res<()> {
        let items: Items<Scalar<'_>> = read_document(r#" {"a": [1]} "#)?;
        assert_eq!(items, Items { kind: Kind::Object, items: Vec::new() });
        let items: Items<Scalar<'_>> = read_document(r#"[1, "x", []]"#)?;
        assert_eq!(items.kind, Kind::Array);
        assert_eq!(items.items, [Scalar::Int(1), Scalar::Str(Cow::Borrowed("x")), Scalar::Array]);
        lenient_struct! {
            struct Probe<'de> {
                a: Scalar<'de> => "a",
            }
        }
        let probe: Probe<'_> = read_document("[{\"a\": 1}]")?;
        assert_eq!((probe.kind, probe.a), (Kind::Array, Scalar::Absent));
        let probe: Probe<'_> = read_document("{\"a\": 1, \"b\": {}, \"a\": 2}")?;
        assert_eq!((probe.kind, probe.a), (Kind::Object, Scalar::Int(2)));
        // Read containers get the full grammar check (skipped ones only the block scan).
        for bad in ["[1,]", "[1 2]", "[,1]", "[", "[1"] {
            assert!(read_document::<Items<Scalar<'_>>>(bad).is_err(), "{bad:?} should be rejected");
        }
        for bad in ["{\"a\" 1}", "{\"a\": 1,}", "{1: 2}", "{,}", "{", "{\"a\": 1"] {
            assert!(read_document::<Probe<'_>>(bad).is_err(), "{bad:?} should be rejected");
        }
        Ok(())
    }

    #[test]
    fn keeps_documents_in_order_and_looks_up_the_last_duplicate() -> Res<()> {
        let j: Json<'_> = read_document(r#"{"b": 1, "a": [2.5, "x"], "b": 3}"#)?;
        assert_eq!(j.get("b"), Some(&Json::Int(3)));
        assert!(matches!(&j, Json::Object(m) if m.len() == 3 && m[0].0 == "b"));
        Ok(())
    }
}

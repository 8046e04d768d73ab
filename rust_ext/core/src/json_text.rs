//! JSON text exactly as Python's `json.dumps(value, ensure_ascii=False, separators=(",", ":"))`
//! writes it for the value `json.loads` would have produced.
//!
//! The `*_json` fields of a RaceUpdate have always been that text (services/transformer/convert.py
//! wrote it from the records), so an update encoded here is byte for byte the one the records
//! path encodes. What Python's round trip changes is reproduced: a float is printed as `repr`
//! prints it (`100.0`, `1e-05`, `1e+16`), an integer literal keeps its digits, and an object
//! with a repeated key keeps the key's first position and its last value.

use std::fmt::Write as _;

use crate::hash::FastMap;
use crate::json::Json;

/// Append `value` as JSON text; `Missing` is written as `null`.
pub fn push_json(out: &mut String, value: &Json<'_>) {
    match value {
        Json::Missing | Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Json::BigInt(text) => out.push_str(text),
        Json::Float(f) => push_float(out, *f),
        Json::Str(s) => push_str_literal(out, s),
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json(out, item);
            }
            out.push(']');
        }
        Json::Object(members) => {
            let members = dict_order(members.iter().map(|(k, v)| (k.as_ref(), v)));
            out.push('{');
            for (i, (key, value)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_str_literal(out, key);
                out.push(':');
                push_json(out, value);
            }
            out.push('}');
        }
    }
}

/// Members as a Python dict holds them: each key at its first position, with its last value.
pub fn dict_order<'k, V>(members: impl Iterator<Item = (&'k str, V)>) -> Vec<(&'k str, V)> {
    let mut out: Vec<(&str, V)> = Vec::new();
    let mut index: FastMap<&str, usize> = FastMap::default();
    for (key, value) in members {
        match index.get(key) {
            Some(&i) => out[i].1 = value,
            None => {
                index.insert(key, out.len());
                out.push((key, value));
            }
        }
    }
    out
}

/// A JSON string literal as Python's encoder writes it with `ensure_ascii=False`.
pub fn push_str_literal(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c < ' ' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A finite double as Python's `repr` prints it: the shortest digits that read back as the same
/// double, in positional form unless the decimal exponent is below -4 or above 15.
pub fn push_float(out: &mut String, value: f64) {
    // `{:e}` gives the shortest round-trip digits: `d[.ddd]e[-]x`.
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let exponent: i64 = exponent.parse().unwrap_or(0);
    if negative {
        out.push('-');
    }
    // Python's decpt: the value is 0.d1d2... x 10^decpt.
    let decpt = exponent + 1;
    let n = i64::try_from(digits.len()).unwrap_or(i64::MAX);
    if !(-4 < decpt && decpt <= 16) {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let _ = write!(out, "e{}{:02}", if exponent < 0 { '-' } else { '+' }, exponent.abs());
    } else if decpt <= 0 {
        out.push_str("0.");
        for _ in 0..-decpt {
            out.push('0');
        }
        out.push_str(&digits);
    } else if decpt >= n {
        out.push_str(&digits);
        for _ in 0..decpt - n {
            out.push('0');
        }
        out.push_str(".0");
    } else {
        let (whole, fraction) = digits.split_at(usize::try_from(decpt).unwrap_or(0));
        out.push_str(whole);
        out.push('.');
        out.push_str(fraction);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::read_document;

    fn float(value: f64) -> String {
        let mut out = String::new();
        push_float(&mut out, value);
        out
    }

    fn text(json: &str) -> String {
        let mut out = String::new();
        let value: Json<'_> = read_document(json).unwrap_or_default();
        push_json(&mut out, &value);
        out
    }

    #[test]
    fn floats_print_as_python_repr() {
        // Each pair was printed by CPython 3.11's repr().
        for (value, repr) in [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (100.0, "100.0"),
            (2.5, "2.5"),
            (0.1 + 0.2, "0.30000000000000004"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (0.000_012_5, "1.25e-05"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (123_456_789.123, "123456789.123"),
            (1e300, "1e+300"),
            (-2.5e-300, "-2.5e-300"),
            (5e-324, "5e-324"),
            (1.797_693_134_862_315_7e308, "1.7976931348623157e+308"),
            (12.345, "12.345"),
            (-7.0, "-7.0"),
        ] {
            assert_eq!(float(value), repr, "{value:e}");
        }
    }

    #[test]
    fn strings_escape_as_python_does_without_ensure_ascii() {
        let mut out = String::new();
        push_str_literal(&mut out, "a\"b\\c\nd\re\tf\u{8}g\u{c}h\u{1}i\u{1f}j\u{7f}ā€😀");
        assert_eq!(out, "\"a\\\"b\\\\c\\nd\\re\\tf\\bg\\fh\\u0001i\\u001fj\u{7f}ā€😀\"");
    }

    #[test]
    fn documents_round_trip_as_python_does() {
        // json.dumps(json.loads(s), ensure_ascii=False, separators=(",", ":")) for each s.
        assert_eq!(
            text(r#"{"b": 1, "a": [1.50, 2E2, -0, 1e-7], "b": null}"#),
            r#"{"b":null,"a":[1.5,200.0,0,1e-07]}"#
        );
        assert_eq!(
            text(r#"[123456789012345678901234567890, "\u00e9", true]"#),
            r#"[123456789012345678901234567890,"é",true]"#
        );
        assert_eq!(text(r#"{"k": {"x": 1, "y": 2, "x": 3}}"#), r#"{"k":{"x":3,"y":2}}"#);
    }
}

//! Calendar helpers without a time-zone database: civil dates and RFC 3339 instants.
//!
//! No NZ (Pacific/Auckland) calendar rule lives here on purpose: the NZ date of an instant comes
//! only from services/common/nztime.py. A race date the payload lacks is left absent and filled in
//! on the Python side (services/transformer/engine.py).

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
#[must_use]
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of days since 1970-01-01 (H. Hinnant's algorithm).
#[must_use]
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn valid_date(y: i64, m: i64, d: i64) -> bool {
    (1..=9999).contains(&y) && (1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m)
}

fn digits(s: &[u8]) -> Option<i64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0i64, |acc, &b| acc * 10 + i64::from(b - b'0')))
}

/// True for a valid calendar date written exactly `YYYY-MM-DD`.
#[must_use]
pub fn is_iso_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    match (digits(&b[0..4]), digits(&b[5..7]), digits(&b[8..10])) {
        (Some(y), Some(m), Some(d)) => valid_date(y, m, d),
        _ => false,
    }
}

/// Milliseconds since the epoch of an RFC 3339 instant (`T` separator, `Z` or `±hh:mm`
/// offset, any number of fractional digits, truncated to milliseconds); `None` if invalid.
#[must_use]
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    let (h, mi, sec) = (digits(&b[11..13])?, digits(&b[14..16])?, digits(&b[17..19])?);
    if !valid_date(y, mo, d) || h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let mut rest = &b[19..];
    let mut frac_ms = 0;
    if rest.first() == Some(&b'.') {
        let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        for i in 0..3 {
            frac_ms = frac_ms * 10 + rest.get(1 + i).filter(|_| i < n).map_or(0, |&c| i64::from(c - b'0'));
        }
        rest = &rest[1 + n..];
    }
    let offset_s = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), oh1, oh2, b':', om1, om2] => {
            let (oh, om) = (digits(&[*oh1, *oh2])?, digits(&[*om1, *om2])?);
            if oh > 23 || om > 59 {
                return None;
            }
            let off = oh * 3600 + om * 60;
            if *sign == b'-' {
                -off
            } else {
                off
            }
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset_s;
    Some(secs * 1000 + frac_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip_across_eras() {
        for days in [-719_468, -1, 0, 59, 60, 11_016, 20_286, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{days} -> {y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn parses_generated_time() {
        assert_eq!(parse_rfc3339_ms("2025-07-17T11:16:59.18904298Z"), Some(1_752_751_019_189));
        assert_eq!(parse_rfc3339_ms("2025-07-17T23:16:59+12:00"), Some(1_752_751_019_000));
        assert_eq!(parse_rfc3339_ms("2025-02-29T00:00:00Z"), None);
        assert_eq!(parse_rfc3339_ms("2025-07-17 11:16:59Z"), None);
        assert_eq!(parse_rfc3339_ms("2025-07-17T11:16:59.Z"), None);
        assert!(is_iso_date("2024-02-29"));
        assert!(!is_iso_date("2025-02-29"));
        assert!(!is_iso_date("0000-01-01"));
    }
}

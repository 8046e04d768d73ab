//! Calendar helpers without a time-zone database: civil dates, RFC 3339 instants and the
//! NZ calendar date of an instant (Pacific/Auckland rules in force since 2007).

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

/// The date (year, month, day) of a day number since 1970-01-01.
#[must_use]
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
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

/// `YYYY-MM-DD` of the Pacific/Auckland calendar date of an instant (epoch seconds).
///
/// NZST is UTC+12 and NZDT UTC+13, from 02:00 NZST on the last Sunday of September to
/// 03:00 NZDT on the first Sunday of April (the rules in force since 2007).
#[must_use]
pub fn nz_date_of(epoch_s: i64) -> String {
    let (year, _, _) = civil_from_days(epoch_s.div_euclid(86_400));
    let weekday = |days: i64| (days + 4).rem_euclid(7); // 0 = Sunday; 1970-01-01 was a Thursday
    let sep30 = days_from_civil(year, 9, 30);
    let dst_start = (sep30 - weekday(sep30)) * 86_400 - 10 * 3600;
    let apr1 = days_from_civil(year, 4, 1);
    let dst_end = (apr1 + (7 - weekday(apr1)) % 7) * 86_400 - 10 * 3600;
    let offset = if epoch_s >= dst_start || epoch_s < dst_end { 13 * 3600 } else { 12 * 3600 };
    let (y, m, d) = civil_from_days((epoch_s + offset).div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nz_dates_follow_the_offset() {
        // 2025-07-17T00:50:00Z is 12:50 NZST on the 17th; 11:59Z is 23:59 NZST.
        assert_eq!(nz_date_of(1_752_713_400), "2025-07-17");
        assert_eq!(nz_date_of(1_752_753_599), "2025-07-17");
        assert_eq!(nz_date_of(1_752_753_600), "2025-07-18");
        // NZDT: 2025-01-10T11:00:00Z is 00:00 NZDT on the 11th.
        assert_eq!(nz_date_of(1_736_506_800), "2025-01-11");
        assert_eq!(nz_date_of(1_736_506_799), "2025-01-10");
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

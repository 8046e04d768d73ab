//! The numeric conventions of money-flow.md §1, §5 and §6: half-up rounding, integer
//! time arithmetic, buckets and the per-runner amount formulas, in the exact operation
//! order of the spec (one IEEE-754 operation at a time, no fused multiply-add).

use crate::vocab::INTERVAL_TYPES;
use std::fmt;

/// A numeric argument outside the domain of a function (not finite, or too big for 64 bits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeError(pub String);

impl fmt::Display for RangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RangeError {}

/// Latest accepted advertised start, in epoch seconds (2099-12-31T23:59:59Z): later is not a real race.
pub const MAX_EPOCH_S: i64 = 4_102_444_799;
/// Largest accepted poll time, in epoch milliseconds.
pub const MAX_EPOCH_MS: i64 = MAX_EPOCH_S * 1000 + 999;

/// 2^63 as a double: the first value that no longer fits an `i64`.
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

/// R(x) = floor(x + 0.5), as a 64-bit integer (§1.3).
///
/// # Errors
/// When `x` is not finite or the result does not fit an `i64`.
pub fn round_half_up(x: f64) -> Result<i64, RangeError> {
    let r = (x + 0.5).floor();
    if !(-TWO_POW_63..TWO_POW_63).contains(&r) {
        return Err(RangeError(format!("cannot round {x} to a 64-bit integer")));
    }
    // Exact: r is an integral double inside the i64 range.
    #[allow(clippy::cast_possible_truncation)]
    Ok(r as i64)
}

/// Odds as integer hundredths, R(x × 100) (§1.5).
///
/// # Errors
/// When `x × 100` is not finite or does not fit an `i64`.
pub fn hundredths(x: f64) -> Result<i64, RangeError> {
    round_half_up(x * 100.0)
}

/// Whole minutes from the poll to the advertised start (§6.1): floor division, no floats.
///
/// # Errors
/// When the start or the poll time is outside 1970..2099.
pub fn time_to_start(advertised_start_s: i64, polled_at_ms: i64) -> Result<i64, RangeError> {
    check_epoch_s(advertised_start_s)?;
    check_epoch_ms(polled_at_ms)?;
    Ok(time_to_start_unchecked(advertised_start_s, polled_at_ms))
}

/// `time_to_start` for arguments already known to be in range.
pub(crate) fn time_to_start_unchecked(advertised_start_s: i64, polled_at_ms: i64) -> i64 {
    let delta_ms = advertised_start_s * 1000 - polled_at_ms;
    (delta_ms + 30_000).div_euclid(60_000)
}

/// Rejects epoch seconds outside 1970..2099.
///
/// # Errors
/// When out of range.
pub fn check_epoch_s(s: i64) -> Result<(), RangeError> {
    if (0..=MAX_EPOCH_S).contains(&s) {
        Ok(())
    } else {
        Err(RangeError(format!("advertised_start_s {s} is out of range (0..={MAX_EPOCH_S})")))
    }
}

/// Rejects epoch milliseconds outside 1970..2099.
///
/// # Errors
/// When out of range.
pub fn check_epoch_ms(ms: i64) -> Result<(), RangeError> {
    if (0..=MAX_EPOCH_MS).contains(&ms) {
        Ok(())
    } else {
        Err(RangeError(format!("polled_at_ms {ms} is out of range (0..={MAX_EPOCH_MS})")))
    }
}

/// The bucket (`time_interval`) of a time to start (§6.2).
#[must_use]
pub fn bucket(time_to_start: i64) -> i64 {
    if time_to_start >= 60 {
        60
    } else if time_to_start >= 5 {
        time_to_start - time_to_start.rem_euclid(5)
    } else {
        time_to_start
    }
}

/// The descriptive interval label of a time to start (§6.3).
#[must_use]
pub fn interval_type(time_to_start: i64) -> &'static str {
    let [five_minutes, two_minutes, thirty_seconds, live] = INTERVAL_TYPES;
    if time_to_start > 30 {
        five_minutes
    } else if time_to_start > 5 {
        two_minutes
    } else if time_to_start > 0 {
        thirty_seconds
    } else {
        live
    }
}

/// One runner's share of the Win and Place pools (§5), before storage rounding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Amounts {
    /// `win_pool_amount`, cents.
    pub win: i64,
    /// `place_pool_amount`, cents.
    pub place: i64,
    /// `total_pool_amount`, cents (the runner's share of Win + Place).
    pub total: i64,
    /// `win_pool_percentage`, unrounded; `None` when the win pool is 0.
    pub win_pct: Option<f64>,
    /// `place_pool_percentage`, unrounded; `None` when the place pool is 0.
    pub place_pct: Option<f64>,
}

/// Largest magnitude an amount may have: beyond 2^53 cents integer/double conversions stop
/// being exact and the two implementations could disagree.
pub const MAX_EXACT: i64 = 1 << 53;

/// Money-flow amounts for a hold share `h` (percent units) and pool totals in cents (§5).
///
/// # Errors
/// When a total is negative or beyond 2^53 cents, `h` is not finite, or an amount
/// would leave the exactly representable range.
#[allow(clippy::cast_precision_loss)] // totals and amounts are checked to be below 2^53
pub fn pool_amounts(h: f64, win_cents: i64, place_cents: i64) -> Result<Amounts, RangeError> {
    for (name, c) in [("win_cents", win_cents), ("place_cents", place_cents)] {
        if !(0..=MAX_EXACT).contains(&c) {
            return Err(RangeError(format!("{name} {c} is out of range (0..=2^53)")));
        }
    }
    if !h.is_finite() {
        return Err(RangeError(format!("hold {h} is not finite")));
    }
    let w = win_cents as f64 / 100.0;
    let p = place_cents as f64 / 100.0;
    let hp = h / 100.0;
    let win = exact_amount((w * hp) * 100.0)?;
    let place = exact_amount((p * hp) * 100.0)?;
    let total = exact_amount(((w + p) * hp) * 100.0)?;
    let win_pct = (win_cents > 0).then(|| (win as f64 / win_cents as f64) * 100.0);
    let place_pct = (place_cents > 0).then(|| (place as f64 / place_cents as f64) * 100.0);
    Ok(Amounts { win, place, total, win_pct, place_pct })
}

fn exact_amount(x: f64) -> Result<i64, RangeError> {
    let r = round_half_up(x)?;
    if r.abs() > MAX_EXACT {
        return Err(RangeError(format!("amount {r} is beyond 2^53 cents")));
    }
    Ok(r)
}

/// A percentage as stored: rounded half up to two decimals, R(x × 100) / 100.
///
/// # Errors
/// When `x × 100` does not fit an `i64`.
#[allow(clippy::cast_precision_loss)] // |R| is far below 2^53 for any real percentage
pub fn round2(x: f64) -> Result<f64, RangeError> {
    Ok(round_half_up(x * 100.0)? as f64 / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_half_up() -> Result<(), RangeError> {
        assert_eq!(round_half_up(2.5)?, 3);
        assert_eq!(round_half_up(-0.5)?, 0);
        assert_eq!(round_half_up(-1.5)?, -1);
        assert!(round_half_up(f64::NAN).is_err());
        assert!(round_half_up(1e19).is_err());
        assert_eq!(round_half_up(-TWO_POW_63)?, i64::MIN);
        Ok(())
    }

    #[test]
    fn buckets_cover_the_table() {
        let cases = [(100, 60), (60, 60), (59, 55), (5, 5), (4, 4), (0, 0), (-1, -1), (-10, -10)];
        for (t, b) in cases {
            assert_eq!(bucket(t), b, "t={t}");
        }
    }
}

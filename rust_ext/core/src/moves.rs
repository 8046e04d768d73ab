//! Moves: the values behind the dashboard's colour indicators (rest-api.md §4.1), computed once
//! on the server for every poll that produced money flow.
//!
//! The timeline's columns are 60, 55, …, 10, 5, 4, 3, 2, 1, 0, -1, -2, …; a poll's moves compare
//! the column its bucket is (`time_interval`) with the column before it in that list. For each
//! column a runner's cell is its latest row there (the latest poll of an effective bucket,
//! money-flow.md §7.1: the rows the timeline serves), or nothing.
//!
//! - `win_money` / `place_money`: the rise, in percentage points, of the runner's share of the
//!   column's positive increments; defined only when both columns' totals are positive.
//! - `win_price`: the shortening of the runner's win price (fixed, else tote) in percent;
//!   defined only when both prices exist and the earlier one is positive.
//!
//! The arithmetic is that of services/gateway/static/js/indicators.js, operation for operation
//! (doubles, sums in runner order), so the server's values and the dashboard's are the same
//! doubles. Only the non-scratched runners count, as on the dashboard.

/// A move at or above this value is worth an alert: the dashboard colours no smaller value
/// (rest-api.md §4.1), and `race_alerts` stores no smaller one.
pub const ALERT_THRESHOLD: f64 = 5.0;

pub use crate::vocab::MOVE_KINDS;

/// What a move measures; `as_str` gives its name in `MOVE_KINDS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveKind {
    /// Rise of the share of the Win increments, in points.
    WinMoney,
    /// Rise of the share of the Place increments, in points.
    PlaceMoney,
    /// Shortening of the win price, in percent.
    WinPrice,
}

impl MoveKind {
    /// The kind's name (`win_money`, `place_money` or `win_price`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        MOVE_KINDS[self as usize]
    }
}

/// The timeline column before column `b`, or `None` for the first column (60).
///
/// Pre-start columns are 5 minutes apart down to 5, then 1 minute apart (money-flow.md §6.2).
#[must_use]
pub const fn previous_column(b: i64) -> Option<i64> {
    if b >= 60 {
        None
    } else if b >= 5 {
        Some(b + 5)
    } else {
        Some(b + 1)
    }
}

/// What the dashboard reads from a runner's latest row in one column.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Cell {
    /// Cents.
    pub incremental_win_amount: i64,
    /// Cents.
    pub incremental_place_amount: i64,
    /// Stored fixed win price, if any.
    pub fixed_win_odds: Option<f64>,
    /// Stored tote win price, if any.
    pub pool_win_odds: Option<f64>,
}

impl Cell {
    /// The price the odds view shows: fixed, else tote (`??` in indicators.js: a fixed price of
    /// 0 is a price, not a missing one).
    #[must_use]
    pub fn price(&self) -> Option<f64> {
        self.fixed_win_odds.or(self.pool_win_odds)
    }
}

/// One runner of the poll with its cells in the previous and the current column.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RunnerColumns {
    /// Scratched runners count in neither column.
    pub scratched: bool,
    /// Latest row in the previous column.
    pub previous: Option<Cell>,
    /// Latest row in the current column.
    pub current: Option<Cell>,
}

/// One defined move of the runner at index `runner` of the slice given to `moves`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Move {
    /// Index into the runners.
    pub runner: usize,
    /// What it measures.
    pub kind: MoveKind,
    /// Points (money) or percent (price); negative values (a falling share, a drifting price)
    /// are moves too.
    pub value: f64,
}

/// Every defined move of one column against the previous one: in runner order, then in the
/// order `win_money`, `place_money`, `win_price`.
#[must_use]
pub fn moves(runners: &[RunnerColumns]) -> Vec<Move> {
    let counted = || runners.iter().enumerate().filter(|(_, r)| !r.scratched);
    let win = Shares::of(counted(), |c| c.incremental_win_amount);
    let place = Shares::of(counted(), |c| c.incremental_place_amount);
    let mut out = Vec::with_capacity(3 * runners.len());
    for (i, runner) in counted() {
        if let Some(value) = win.rise(runner) {
            out.push(Move { runner: i, kind: MoveKind::WinMoney, value });
        }
        if let Some(value) = place.rise(runner) {
            out.push(Move { runner: i, kind: MoveKind::PlaceMoney, value });
        }
        let prices = (runner.previous.and_then(|c| c.price()), runner.current.and_then(|c| c.price()));
        if let (Some(before), Some(now)) = prices {
            if before > 0.0 {
                out.push(Move {
                    runner: i,
                    kind: MoveKind::WinPrice,
                    value: (before - now) * 100.0 / before,
                });
            }
        }
    }
    out
}

/// The positive-increment totals of both columns for one amount (Win or Place).
struct Shares {
    amount: fn(&Cell) -> i64,
    previous_total: f64,
    current_total: f64,
}

impl Shares {
    fn of<'r>(runners: impl Iterator<Item = (usize, &'r RunnerColumns)>, amount: fn(&Cell) -> i64) -> Self {
        let mut previous_total = 0.0;
        let mut current_total = 0.0;
        // Summed in runner order, in doubles, as indicators.js reduces them.
        for (_, r) in runners {
            previous_total += positive(r.previous.as_ref(), amount);
            current_total += positive(r.current.as_ref(), amount);
        }
        Self { amount, previous_total, current_total }
    }

    /// share_now − share_before, when both columns hold positive money.
    fn rise(&self, r: &RunnerColumns) -> Option<f64> {
        if self.previous_total == 0.0 || self.current_total == 0.0 {
            return None;
        }
        let share = |cell: Option<&Cell>, total: f64| positive(cell, self.amount) * 100.0 / total;
        Some(share(r.current.as_ref(), self.current_total) - share(r.previous.as_ref(), self.previous_total))
    }
}

/// max(0, amount) as the double the dashboard holds; 0 without a row.
#[allow(clippy::cast_precision_loss)] // cents are below 2^53 (pool totals are capped at 10^13)
fn positive(cell: Option<&Cell>, amount: fn(&Cell) -> i64) -> f64 {
    cell.map_or(0.0, |c| (amount(c) as f64).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(win: i64, place: i64, fixed: Option<f64>, pool: Option<f64>) -> Option<Cell> {
        Some(Cell {
            incremental_win_amount: win,
            incremental_place_amount: place,
            fixed_win_odds: fixed,
            pool_win_odds: pool,
        })
    }

    #[test]
    fn the_previous_column_follows_the_timeline() {
        let pairs = [(60, None), (55, Some(60)), (10, Some(15)), (5, Some(10)), (4, Some(5))];
        for (b, p) in pairs.into_iter().chain([(1, Some(2)), (0, Some(1)), (-1, Some(0)), (-7, Some(-6))]) {
            assert_eq!(previous_column(b), p, "column {b}");
        }
    }

    #[test]
    fn a_share_rise_and_a_shortening_price() {
        // Before: 300 of 1000 (30 %) and 700; now: 600 of 1000 (60 %) and 400.
        let runners = [
            RunnerColumns {
                scratched: false,
                previous: cell(300, 100, Some(4.0), None),
                current: cell(600, 100, Some(3.0), Some(9.0)),
            },
            RunnerColumns {
                scratched: false,
                previous: cell(700, 0, None, None),
                current: cell(400, 0, None, None),
            },
        ];
        let got = moves(&runners);
        let expected = [
            Move { runner: 0, kind: MoveKind::WinMoney, value: 60.0 - 30.0 },
            Move { runner: 0, kind: MoveKind::PlaceMoney, value: 0.0 },
            Move { runner: 0, kind: MoveKind::WinPrice, value: 25.0 },
            Move { runner: 1, kind: MoveKind::WinMoney, value: 40.0 - 70.0 },
            Move { runner: 1, kind: MoveKind::PlaceMoney, value: 0.0 },
        ];
        assert_eq!(got, expected);
        assert_eq!(MoveKind::WinPrice.as_str(), "win_price");
    }

    #[test]
    fn scratched_runners_and_empty_columns_count_for_nothing() {
        let runners = [
            RunnerColumns { scratched: true, previous: cell(900, 900, Some(2.0), None), current: None },
            RunnerColumns {
                scratched: false,
                previous: cell(100, 0, Some(0.0), None),
                current: cell(-50, 0, Some(2.0), None),
            },
        ];
        // Win: the current total is 0 (only a negative increment); Place: both totals are 0;
        // price: a price of 0 before defines nothing.
        assert!(moves(&runners).is_empty());
    }
}

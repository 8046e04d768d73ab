//! The prior state of a race (money-flow.md §0) and the pool totals it carries.
//!
//! Entrant ids and odds types are `Arc<str>`: a state repeats each id in many entries, and
//! entries are cloned from poll to poll.

use std::sync::Arc;

/// The latest stored poll of one entrant in one bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct BucketLatest {
    /// Entrant.
    pub entrant_id: Arc<str>,
    /// Bucket.
    pub time_interval: i64,
    /// Poll time, epoch ms.
    pub polled_at: i64,
    /// Row id in storage; `None` for a poll this transformer produced (newest by definition).
    pub row_id: Option<i64>,
    /// Cents.
    pub win_pool_amount: i64,
    /// Cents.
    pub place_pool_amount: i64,
    /// The increments stored on that poll's row (cents) and its win prices: the cell of the
    /// timeline column the next bucket's moves compare with (crate::moves).
    pub incremental_win_amount: i64,
    /// Cents.
    pub incremental_place_amount: i64,
    /// Fixed win price of the row.
    pub fixed_win_odds: Option<f64>,
    /// Tote win price of the row.
    pub pool_win_odds: Option<f64>,
}

impl BucketLatest {
    /// Recency order: poll time, then row id, a state-only poll (no row id) counting as newest.
    #[must_use]
    pub fn recency(&self) -> (i64, bool, i64) {
        (self.polled_at, self.row_id.is_none(), self.row_id.unwrap_or(0))
    }

    /// The cell the dashboard reads from this row (crate::moves).
    #[must_use]
    pub fn cell(&self) -> crate::moves::Cell {
        crate::moves::Cell {
            incremental_win_amount: self.incremental_win_amount,
            incremental_place_amount: self.incremental_place_amount,
            fixed_win_odds: self.fixed_win_odds,
            pool_win_odds: self.pool_win_odds,
        }
    }
}

/// The last stored odds of one entrant and type; `odds: None` is a stored null.
#[derive(Debug, Clone, PartialEq)]
pub struct LastOdds {
    /// Entrant.
    pub entrant_id: Arc<str>,
    /// `fixed_win`, `fixed_place`, `pool_win` or `pool_place`.
    pub odds_type: Arc<str>,
    /// Value (two decimals) or null.
    pub odds: Option<f64>,
}

/// Single-race pool totals in cents (money-flow.md §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pools {
    /// Race.
    pub race_id: String,
    /// Win.
    pub win_pool_total: i64,
    /// Place.
    pub place_pool_total: i64,
    /// Quinella.
    pub quinella_pool_total: i64,
    /// Trifecta.
    pub trifecta_pool_total: i64,
    /// Exacta.
    pub exacta_pool_total: i64,
    /// First four.
    pub first4_pool_total: i64,
    /// Sum of the six.
    pub total_race_pool: i64,
    /// Always `$`.
    pub currency: String,
    /// Products found (0..6).
    pub extracted_pools: i64,
    /// 0..100.
    pub data_quality_score: i64,
    /// `tote_pools` or `dividends`.
    pub source: String,
    /// Poll time at which a total last changed, epoch ms.
    pub last_updated: i64,
}

impl Pools {
    /// The six product totals in the order win, place, quinella, trifecta, exacta, first4.
    #[must_use]
    pub fn totals(&self) -> [i64; 6] {
        [
            self.win_pool_total,
            self.place_pool_total,
            self.quinella_pool_total,
            self.trifecta_pool_total,
            self.exacta_pool_total,
            self.first4_pool_total,
        ]
    }
}

/// Everything a transform needs from the past of one race.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PriorState {
    /// Race ("" = not known yet).
    pub race_id: String,
    /// Latest poll per (entrant, bucket).
    pub buckets: Vec<BucketLatest>,
    /// Last stored odds per (entrant, type).
    pub odds: Vec<LastOdds>,
    /// Stored (normalised) status.
    pub status: Option<String>,
    /// Stored start, epoch ms.
    pub start_time: Option<i64>,
    /// Protest flag from the meetings list.
    pub protest: bool,
    /// Last stored pool totals.
    pub pools: Option<Pools>,
    /// Sticky flag.
    pub photo_finish: bool,
    /// Sticky flag.
    pub stewards_inquiry: bool,
    /// Sticky flag.
    pub protest_lodged: bool,
    /// `interim`, `final` or `protest`.
    pub result_status: Option<String>,
    /// Poll at which `result_status` took its value, epoch ms.
    pub result_time: Option<i64>,
}

impl PriorState {
    /// The state of a race never seen before.
    #[must_use]
    pub fn empty(race_id: &str) -> Self {
        Self { race_id: race_id.to_owned(), ..Self::default() }
    }
}

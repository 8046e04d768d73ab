//! What one poll produces (money-flow.md §8-11); mirrors services/transformer/records.py.

use std::borrow::Cow;

use crate::json::Json;
use crate::moves::MoveKind;
use crate::state::{Pools, PriorState};

/// The race as normalised from `data.race`.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub struct RaceRecord<'a> {
    pub race_id: Cow<'a, str>,
    pub meeting_id: Cow<'a, str>,
    pub race_number: i64,
    pub name: Cow<'a, str>,
    pub status: &'static str,
    pub status_raw: Option<Cow<'a, str>>,
    pub start_time: i64,
    pub actual_start: Option<i64>,
    /// `None` when the payload has no valid date: the caller derives it (NZ date of the start).
    pub race_date_nz: Option<Cow<'a, str>>,
    pub start_time_nz: Option<Cow<'a, str>>,
    pub tote_start_time: Option<Cow<'a, str>>,
    pub race_type: Option<Cow<'a, str>>,
    pub country: Option<Cow<'a, str>>,
    pub state: Option<Cow<'a, str>>,
    pub distance: Option<i64>,
    pub track_condition: Option<Cow<'a, str>>,
    pub track_surface: Option<Cow<'a, str>>,
    pub track_direction: Option<Cow<'a, str>>,
    pub weather: Option<Cow<'a, str>>,
    pub rail_position: Option<Cow<'a, str>>,
    pub race_class: Option<Cow<'a, str>>,
    pub entrant_count: Option<i64>,
    pub field_size: Option<i64>,
    pub positions_paid: Option<i64>,
    pub total_prize_money: Option<i64>,
    pub silk_url: Option<Cow<'a, str>>,
    pub silk_base_url: Option<Cow<'a, str>>,
    pub video_channels: Vec<Cow<'a, str>>,
}

/// A minimal meeting derived from the race (§8.3).
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub struct MeetingRecord<'a> {
    pub meeting_id: Cow<'a, str>,
    pub meeting_name: Cow<'a, str>,
    /// The race's `race_date_nz`, absent when that is.
    pub date: Option<Cow<'a, str>>,
    pub country: Cow<'a, str>,
    pub state: Option<Cow<'a, str>>,
    pub category: Cow<'a, str>,
    pub category_name: Option<&'static str>,
    pub track_condition: Option<Cow<'a, str>>,
    pub weather: Option<Cow<'a, str>>,
}

/// A runner's current state (§8.2). Odds are hundredths (stored as `h / 100`).
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub struct EntrantRecord<'a> {
    pub entrant_id: Cow<'a, str>,
    pub runner_number: i64,
    pub name: Cow<'a, str>,
    pub barrier: Option<i64>,
    pub barrier_position: Option<Cow<'a, str>>,
    pub jockey: Option<Cow<'a, str>>,
    pub trainer_name: Option<Cow<'a, str>>,
    pub silk_colours: Option<Cow<'a, str>>,
    pub silk_url_64x64: Option<Cow<'a, str>>,
    pub silk_url_128x128: Option<Cow<'a, str>>,
    pub is_scratched: bool,
    pub is_late_scratched: bool,
    pub scratch_time: Option<i64>,
    pub favourite: bool,
    pub mover: bool,
    pub runner_change: Json<'a>,
    pub odds: [Option<i64>; 4],
    /// Set when this poll produced a money-flow row for the runner.
    pub money_flow: Option<EntrantMoneyFlow>,
}

impl EntrantRecord<'_> {
    /// Scratched or late-scratched in this payload.
    #[must_use]
    pub fn scratched(&self) -> bool {
        self.is_scratched || self.is_late_scratched
    }
}

/// The money-flow columns of an entrant, percentages rounded to 2 dp.
#[derive(Debug, Clone, Copy, PartialEq)]
#[allow(missing_docs)]
pub struct EntrantMoneyFlow {
    pub hold_percentage: f64,
    pub bet_percentage: f64,
    pub win_pool_percentage: Option<f64>,
    pub place_pool_percentage: Option<f64>,
    pub win_pool_amount: i64,
    pub place_pool_amount: i64,
}

/// One money-flow row (§8.1); percentages rounded to 2 dp, odds in hundredths.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub struct MoneyFlowRow<'a> {
    pub entrant_id: Cow<'a, str>,
    pub advertised_start: i64,
    pub time_to_start: i64,
    pub time_interval: i64,
    pub interval_type: &'static str,
    pub hold_percentage: f64,
    pub bet_percentage: f64,
    pub win_pool_total: i64,
    pub place_pool_total: i64,
    pub win_pool_amount: i64,
    pub place_pool_amount: i64,
    pub total_pool_amount: i64,
    pub win_pool_percentage: Option<f64>,
    pub place_pool_percentage: Option<f64>,
    pub incremental_win_amount: i64,
    pub incremental_place_amount: i64,
    pub is_baseline: bool,
    pub odds: [Option<i64>; 4],
}

pub use crate::vocab::ODDS_TYPES;

/// A changed odds value (§9.3); `hundredths: None` = the price disappeared.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct OddsChange<'a> {
    pub entrant_id: Cow<'a, str>,
    pub odds_type: &'static str,
    pub hundredths: Option<i64>,
}

/// `fixed_odds_data` entry of one runner.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub struct FixedOdds<'a> {
    pub entrant_id: Cow<'a, str>,
    pub runner_name: Cow<'a, str>,
    pub fixed_win_odds: Option<i64>,
    pub fixed_place_odds: Option<i64>,
}

/// Results, dividends and flags (§10).
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub struct ResultsRecord<'a> {
    pub results_available: bool,
    pub results_data: Vec<Json<'a>>,
    pub dividends_data: Vec<Json<'a>>,
    /// Keyed by runner number as text, in runner order.
    pub fixed_odds_data: Vec<(String, FixedOdds<'a>)>,
    pub result_status: &'static str,
    pub photo_finish: bool,
    pub stewards_inquiry: bool,
    pub protest_lodged: bool,
    pub result_time: i64,
}

/// One data-quality finding (§11).
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Check name, e.g. `hold_sum`.
    pub check: &'static str,
    /// `info`, `warning` or `error`.
    pub level: &'static str,
    /// What was found; names the field path where there is one.
    pub message: String,
    /// The measured value, when there is one.
    pub value: Option<f64>,
}

/// A move of one runner into the column of this poll's bucket (crate::moves).
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub struct MoveRecord<'a> {
    pub entrant_id: Cow<'a, str>,
    pub kind: MoveKind,
    pub time_interval: i64,
    pub previous_interval: i64,
    pub value: f64,
}

/// Everything one poll produces; `state` is the prior state for the next poll.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub struct RaceUpdate<'a> {
    pub race_id: Cow<'a, str>,
    pub polled_at: i64,
    pub source_generated_at: Option<i64>,
    pub race: RaceRecord<'a>,
    pub meeting: MeetingRecord<'a>,
    pub entrants: Vec<EntrantRecord<'a>>,
    pub money_flow: Vec<MoneyFlowRow<'a>>,
    pub odds: Vec<OddsChange<'a>>,
    pub pools: Option<Pools>,
    pub results: Option<ResultsRecord<'a>>,
    pub quality: Vec<Finding>,
    /// Every defined move of this poll's column (none without money flow or in column 60).
    pub moves: Vec<MoveRecord<'a>>,
    pub state: PriorState,
}

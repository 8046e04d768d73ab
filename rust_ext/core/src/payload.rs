//! The consumed parts of a TAB event payload (nztab-api.md §4-5), read leniently.

use crate::error::PayloadError;
use crate::json::{lenient_struct, read_document, FromJson, Items, Json, Kind, Scalar};

lenient_struct! {
    /// The response envelope.
    pub struct RawRoot<'de> {
        /// `header`.
        header: RawHeader<'de> => "header",
        /// `data`.
        data: RawData<'de> => "data",
    }
}

lenient_struct! {
    /// `header`.
    pub struct RawHeader<'de> {
        /// `header.generated_time`.
        generated_time: Scalar<'de> => "generated_time",
    }
}

lenient_struct! {
    /// `data` of an event response.
    pub struct RawData<'de> {
        /// `data.race`.
        race: RawRace<'de> => "race",
        /// `data.runners`.
        runners: Items<RawRunner<'de>> => "runners",
        /// `data.money_tracker`.
        money_tracker: RawTracker<'de> => "money_tracker",
        /// `data.tote_pools`.
        tote_pools: Items<RawPool<'de>> => "tote_pools",
        /// `data.results`.
        results: Items<Json<'de>> => "results",
        /// `data.dividends`.
        dividends: Items<Json<'de>> => "dividends",
        /// `data.error`.
        error: Scalar<'de> => "error",
    }
}

lenient_struct! {
    /// `data.race`.
    pub struct RawRace<'de> {
        /// Race id.
        event_id: Scalar<'de> => "event_id",
        /// Meeting id.
        meeting_id: Scalar<'de> => "meeting_id",
        /// Meeting name.
        meeting_name: Scalar<'de> => "meeting_name",
        /// Race name.
        description: Scalar<'de> => "description",
        /// Race number.
        race_number: Scalar<'de> => "race_number",
        /// Upstream status.
        status: Scalar<'de> => "status",
        /// Start, epoch seconds.
        advertised_start: Scalar<'de> => "advertised_start",
        /// Jump, epoch seconds (0 = not yet).
        actual_start: Scalar<'de> => "actual_start",
        /// NZ date of the start.
        race_date_nz: Scalar<'de> => "race_date_nz",
        /// Display start time.
        start_time_nz: Scalar<'de> => "start_time_nz",
        /// Tote clock start (text).
        tote_start_time: Scalar<'de> => "tote_start_time",
        /// Category T/H/G.
        race_type: Scalar<'de> => "type",
        /// Country code.
        country: Scalar<'de> => "country",
        /// State.
        state: Scalar<'de> => "state",
        /// Metres.
        distance: Scalar<'de> => "distance",
        /// Weather.
        weather: Scalar<'de> => "weather",
        /// Track condition.
        track_condition: Scalar<'de> => "track_condition",
        /// Track surface.
        track_surface: Scalar<'de> => "track_surface",
        /// Track direction.
        track_direction: Scalar<'de> => "track_direction",
        /// Rail position.
        rail_position: Scalar<'de> => "rail_position",
        /// Race class.
        race_class: Scalar<'de> => "class",
        /// Entrant count.
        entrant_count: Scalar<'de> => "entrant_count",
        /// Field size.
        field_size: Scalar<'de> => "field_size",
        /// Positions paid.
        positions_paid: Scalar<'de> => "positions_paid",
        /// Prize money.
        prize_monies: RawPrize<'de> => "prize_monies",
        /// Silk sprite URL.
        silk_url: Scalar<'de> => "silk_url",
        /// Silk host.
        silk_base_url: Scalar<'de> => "silk_base_url",
        /// Video channels.
        video_channels: Items<Scalar<'de>> => "video_channels",
    }
}

lenient_struct! {
    /// `data.race.prize_monies`.
    pub struct RawPrize<'de> {
        /// Dollars.
        total_value: Scalar<'de> => "total_value",
    }
}

lenient_struct! {
    /// One `data.runners[]` item.
    pub struct RawRunner<'de> {
        /// Entrant id.
        entrant_id: Scalar<'de> => "entrant_id",
        /// Saddlecloth number.
        runner_number: Scalar<'de> => "runner_number",
        /// Name.
        name: Scalar<'de> => "name",
        /// Barrier.
        barrier: Scalar<'de> => "barrier",
        /// Harness row text.
        barrier_position: Scalar<'de> => "barrier_position",
        /// Jockey or driver.
        jockey: Scalar<'de> => "jockey",
        /// Trainer.
        trainer_name: Scalar<'de> => "trainer_name",
        /// Silk description.
        silk_colours: Scalar<'de> => "silk_colours",
        /// Silk image.
        silk_url_64x64: Scalar<'de> => "silk_url_64x64",
        /// Silk image.
        silk_url_128x128: Scalar<'de> => "silk_url_128x128",
        /// Scratched.
        is_scratched: Scalar<'de> => "is_scratched",
        /// Late scratched.
        is_late_scratched: Scalar<'de> => "is_late_scratched",
        /// Epoch seconds, 0 = none.
        scratch_time: Scalar<'de> => "scratch_time",
        /// Favourite flag.
        favourite: Scalar<'de> => "favourite",
        /// Mover flag.
        mover: Scalar<'de> => "mover",
        /// Date -> text object, kept as JSON.
        runner_change: Json<'de> => "runner_change",
        /// Prices.
        odds: RawOdds<'de> => "odds",
    }
}

lenient_struct! {
    /// `odds` of a runner.
    pub struct RawOdds<'de> {
        /// Fixed win.
        fixed_win: Scalar<'de> => "fixed_win",
        /// Fixed place.
        fixed_place: Scalar<'de> => "fixed_place",
        /// Tote win estimate.
        pool_win: Scalar<'de> => "pool_win",
        /// Tote place estimate.
        pool_place: Scalar<'de> => "pool_place",
    }
}

lenient_struct! {
    /// `data.money_tracker`.
    pub struct RawTracker<'de> {
        /// Additive rows, several per entrant.
        entrants: Items<RawTrackerRow<'de>> => "entrants",
    }
}

lenient_struct! {
    /// One `data.money_tracker.entrants[]` row.
    pub struct RawTrackerRow<'de> {
        /// Entrant id (may not be a runner).
        entrant_id: Scalar<'de> => "entrant_id",
        /// Hold share, percent units.
        hold_percentage: Scalar<'de> => "hold_percentage",
        /// Bet share, percent units.
        bet_percentage: Scalar<'de> => "bet_percentage",
    }
}

lenient_struct! {
    /// One `data.tote_pools[]` row.
    pub struct RawPool<'de> {
        /// Product name.
        product_type: Scalar<'de> => "product_type",
        /// Dollars.
        total: Scalar<'de> => "total",
    }
}

/// Checks the bytes are UTF-8 and strict JSON, and reads `T` from them.
///
/// # Errors
/// `PayloadDecodeError` when the text is not UTF-8 or not JSON.
pub fn decode<'a, T: FromJson<'a>>(payload: &'a [u8]) -> Result<T, PayloadError> {
    let text = crate::json::utf8(payload).map_err(|e| {
        PayloadError::decode(format!("payload: not valid UTF-8 (at byte {})", e.valid_up_to()))
    })?;
    read_document::<T>(text).map_err(|e| PayloadError::decode(format!("payload: not valid JSON: {e}")))
}

/// Rejects a root that is not an object.
///
/// # Errors
/// `PayloadDecodeError` naming the kind found.
pub fn require_object_root(kind: Kind) -> Result<(), PayloadError> {
    if kind == Kind::Object {
        Ok(())
    } else {
        Err(PayloadError::decode(format!("payload: expected a JSON object, got {}", kind.name())))
    }
}

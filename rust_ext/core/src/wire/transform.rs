//! The transformer's side of the wire: a serialised `TransformRequest` in, the serialised
//! `TransformResponse` out, with no Python object in between.
//!
//! The response is byte for byte what services/transformer/convert.py builds from the
//! records of the same transform (the records path stays for the CLI and as the tests'
//! oracle): the same fields set or left absent, instants as Timestamps of the epoch
//! milliseconds, JSON documents as Python's compact `json.dumps` text (see `json_text`).

use prost::Message;
use prost_types::Timestamp;

use super::pb;
use crate::error::PayloadError;
use crate::inflate::{inflate, InflateError};
use crate::json::Json;
use crate::json_text::{dict_order, push_float, push_json, push_str_literal};
use crate::state::{BucketLatest, LastOdds, Pools, PriorState};
use crate::transform::to_odds;
use crate::update::{EntrantRecord, RaceUpdate};
use crate::TransformError;

/// Why a request could not be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// The payload is malformed (`PayloadDecodeError` / `PayloadSchemaError`).
    Payload(PayloadError),
    /// The request is (the message says how).
    Invalid(String),
}

impl From<PayloadError> for RequestError {
    fn from(e: PayloadError) -> Self {
        RequestError::Payload(e)
    }
}

/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z: the instants a Timestamp (and Python) hold.
pub const MIN_TIMESTAMP_MS: i64 = -62_135_596_800_000;
/// See `MIN_TIMESTAMP_MS`.
pub const MAX_TIMESTAMP_MS: i64 = 253_402_300_799_999;

/// Transform one serialised `TransformRequest`; the serialised `TransformResponse`.
///
/// `nz_date` gives the NZ calendar date (`YYYY-MM-DD`) of an instant in epoch ms; it is only
/// called for a race whose payload has no valid `race_date_nz` (the NZ calendar lives in
/// services/common/nztime.py, not here).
///
/// # Errors
/// `RequestError::Payload` for a malformed payload (gzip included); `RequestError::Invalid`
/// for a request that is not a `TransformRequest`, lacks or misplaces `polled_at`, names an
/// unsupported payload encoding, or carries an invalid prior state.
pub fn transform_request(
    request: &[u8],
    nz_date: impl Fn(i64) -> Result<String, String>,
) -> Result<Vec<u8>, RequestError> {
    let request = pb::TransformRequest::decode(request)
        .map_err(|e| RequestError::Invalid(format!("not a TransformRequest: {e}")))?;
    let polled_at = request.polled_at.as_ref().ok_or_else(|| {
        RequestError::Invalid("polled_at is required: the receive time of the payload".into())
    })?;
    let polled_at_ms = ms_of(polled_at);
    if !(MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS).contains(&polled_at_ms) {
        return Err(RequestError::Invalid(format!(
            "polled_at is out of range: {polled_at_ms} ms since the epoch"
        )));
    }
    let prior = state_from_pb(request.prior_state.unwrap_or_default());
    let payload = inflate(&request.payload, &request.payload_encoding).map_err(|e| match e {
        InflateError::Payload(p) => RequestError::Payload(p),
        InflateError::Encoding(m) => RequestError::Invalid(m),
    })?;
    let update = crate::transform(&payload, polled_at_ms, &prior).map_err(|e| match e {
        TransformError::Payload(p) => RequestError::Payload(p),
        TransformError::Argument(m) => RequestError::Invalid(format!("bad request: {m}")),
    })?;
    let mut message = update_to_pb(&update).map_err(RequestError::Invalid)?;
    fill_race_date(&mut message, &update, nz_date)?;
    Ok(pb::TransformResponse { update: Some(message) }.encode_to_vec())
}

/// Epoch milliseconds of a Timestamp, the sub-millisecond part dropped (as Python floors it).
#[must_use]
pub fn ms_of(ts: &Timestamp) -> i64 {
    ts.seconds.saturating_mul(1000).saturating_add(i64::from(ts.nanos).div_euclid(1_000_000))
}

/// The Timestamp of epoch milliseconds; an error outside years 1 to 9999.
///
/// # Errors
/// A message naming `field` when `ms` is out of range.
pub fn timestamp_of(ms: i64, field: &str) -> Result<Timestamp, String> {
    if !(MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS).contains(&ms) {
        return Err(format!("{field}: instant {ms} ms since the epoch is outside years 1 to 9999"));
    }
    // Floor division keeps nanos in [0, 1e9) for instants before 1970, as Timestamp requires.
    let nanos = i32::try_from(ms.rem_euclid(1000) * 1_000_000).map_err(|e| format!("{field}: {e}"))?;
    Ok(Timestamp { seconds: ms.div_euclid(1000), nanos })
}

fn opt_timestamp(ms: Option<i64>, field: &str) -> Result<Option<Timestamp>, String> {
    ms.map(|ms| timestamp_of(ms, field)).transpose()
}

fn int32(value: i64, field: &str) -> Result<i32, String> {
    i32::try_from(value).map_err(|_| format!("{field}: {value} does not fit a 32-bit integer"))
}

fn opt_int32(value: Option<i64>, field: &str) -> Result<Option<i32>, String> {
    value.map(|v| int32(v, field)).transpose()
}

fn owned(value: Option<&std::borrow::Cow<'_, str>>) -> Option<String> {
    value.map(|v| v.to_string())
}

/// The prior state of a `RaceState` message (as convert.state_from_proto reads it).
#[must_use]
pub fn state_from_pb(state: pb::RaceState) -> PriorState {
    let mut ids: crate::hash::FastMap<String, std::sync::Arc<str>> = crate::hash::FastMap::default();
    let mut intern = |text: String| -> std::sync::Arc<str> {
        ids.entry(text).or_insert_with_key(|key| std::sync::Arc::from(key.as_str())).clone()
    };
    let buckets = state
        .buckets
        .into_iter()
        .map(|b| BucketLatest {
            entrant_id: intern(b.entrant_id),
            time_interval: i64::from(b.time_interval),
            polled_at: b.polled_at.as_ref().map_or(0, ms_of),
            row_id: b.row_id,
            win_pool_amount: b.win_pool_amount,
            place_pool_amount: b.place_pool_amount,
            incremental_win_amount: b.incremental_win_amount,
            incremental_place_amount: b.incremental_place_amount,
            fixed_win_odds: b.fixed_win_odds,
            pool_win_odds: b.pool_win_odds,
        })
        .collect();
    let odds = state
        .odds
        .into_iter()
        .map(|o| LastOdds { entrant_id: intern(o.entrant_id), odds_type: intern(o.r#type), odds: o.odds })
        .collect();
    PriorState {
        race_id: state.race_id,
        buckets,
        odds,
        status: state.status,
        start_time: state.start_time.as_ref().map(ms_of),
        protest: state.protest,
        pools: state.pools.map(pools_from_pb),
        photo_finish: state.photo_finish,
        stewards_inquiry: state.stewards_inquiry,
        protest_lodged: state.protest_lodged,
        result_status: state.result_status,
        result_time: state.result_time.as_ref().map(ms_of),
    }
}

fn pools_from_pb(p: pb::RacePools) -> Pools {
    Pools {
        race_id: p.race_id,
        win_pool_total: p.win_pool_total,
        place_pool_total: p.place_pool_total,
        quinella_pool_total: p.quinella_pool_total,
        trifecta_pool_total: p.trifecta_pool_total,
        exacta_pool_total: p.exacta_pool_total,
        first4_pool_total: p.first4_pool_total,
        total_race_pool: p.total_race_pool,
        currency: p.currency,
        extracted_pools: i64::from(p.extracted_pools),
        data_quality_score: i64::from(p.data_quality_score),
        source: p.source,
        last_updated: p.last_updated.as_ref().map_or(0, ms_of),
    }
}

fn pools_to_pb(p: &Pools) -> Result<pb::RacePools, String> {
    Ok(pb::RacePools {
        race_id: p.race_id.clone(),
        win_pool_total: p.win_pool_total,
        place_pool_total: p.place_pool_total,
        quinella_pool_total: p.quinella_pool_total,
        trifecta_pool_total: p.trifecta_pool_total,
        exacta_pool_total: p.exacta_pool_total,
        first4_pool_total: p.first4_pool_total,
        total_race_pool: p.total_race_pool,
        currency: p.currency.clone(),
        extracted_pools: int32(p.extracted_pools, "pools.extracted_pools")?,
        data_quality_score: int32(p.data_quality_score, "pools.data_quality_score")?,
        source: p.source.clone(),
        last_updated: Some(timestamp_of(p.last_updated, "pools.last_updated")?),
    })
}

fn state_to_pb(s: &PriorState) -> Result<pb::RaceState, String> {
    let mut buckets = Vec::with_capacity(s.buckets.len());
    for b in &s.buckets {
        buckets.push(pb::BucketLatest {
            entrant_id: b.entrant_id.to_string(),
            time_interval: int32(b.time_interval, "state.buckets.time_interval")?,
            polled_at: Some(timestamp_of(b.polled_at, "state.buckets.polled_at")?),
            row_id: b.row_id,
            win_pool_amount: b.win_pool_amount,
            place_pool_amount: b.place_pool_amount,
            incremental_win_amount: b.incremental_win_amount,
            incremental_place_amount: b.incremental_place_amount,
            fixed_win_odds: b.fixed_win_odds,
            pool_win_odds: b.pool_win_odds,
        });
    }
    Ok(pb::RaceState {
        race_id: s.race_id.clone(),
        buckets,
        odds: s
            .odds
            .iter()
            .map(|o| pb::LastOdds {
                entrant_id: o.entrant_id.to_string(),
                r#type: o.odds_type.to_string(),
                odds: o.odds,
            })
            .collect(),
        status: s.status.clone(),
        start_time: opt_timestamp(s.start_time, "state.start_time")?,
        protest: s.protest,
        pools: s.pools.as_ref().map(pools_to_pb).transpose()?,
        photo_finish: s.photo_finish,
        stewards_inquiry: s.stewards_inquiry,
        protest_lodged: s.protest_lodged,
        result_status: s.result_status.clone(),
        result_time: opt_timestamp(s.result_time, "state.result_time")?,
    })
}

/// A JSON document's text, or absent for null (the records path leaves a None field unset).
fn document(value: &Json<'_>) -> Option<String> {
    if matches!(value, Json::Missing | Json::Null) {
        return None;
    }
    let mut out = String::new();
    push_json(&mut out, value);
    Some(out)
}

fn documents(values: &[Json<'_>]) -> String {
    let mut out = String::from("[");
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json(&mut out, value);
    }
    out.push(']');
    out
}

fn odds_value(out: &mut String, hundredths: Option<i64>) {
    match hundredths {
        Some(h) => push_float(out, to_odds(h)),
        None => out.push_str("null"),
    }
}

fn entrant_to_pb(e: &EntrantRecord<'_>, race_id: &str, polled_at: &Timestamp) -> Result<pb::Entrant, String> {
    let mf = e.money_flow.as_ref();
    Ok(pb::Entrant {
        entrant_id: e.entrant_id.to_string(),
        race_id: race_id.to_owned(),
        runner_number: int32(e.runner_number, "entrant.runner_number")?,
        name: e.name.to_string(),
        barrier: opt_int32(e.barrier, "entrant.barrier")?,
        barrier_position: owned(e.barrier_position.as_ref()),
        jockey: owned(e.jockey.as_ref()),
        trainer_name: owned(e.trainer_name.as_ref()),
        silk_colours: owned(e.silk_colours.as_ref()),
        silk_url_64x64: owned(e.silk_url_64x64.as_ref()),
        silk_url_128x128: owned(e.silk_url_128x128.as_ref()),
        is_scratched: e.is_scratched,
        is_late_scratched: e.is_late_scratched,
        scratch_time: opt_timestamp(e.scratch_time, "entrant.scratch_time")?,
        favourite: e.favourite,
        mover: e.mover,
        runner_change_json: document(&e.runner_change),
        fixed_win_odds: e.odds[0].map(to_odds),
        fixed_place_odds: e.odds[1].map(to_odds),
        pool_win_odds: e.odds[2].map(to_odds),
        pool_place_odds: e.odds[3].map(to_odds),
        has_money_flow: mf.is_some(),
        hold_percentage: mf.map(|m| m.hold_percentage),
        bet_percentage: mf.map(|m| m.bet_percentage),
        win_pool_percentage: mf.and_then(|m| m.win_pool_percentage),
        place_pool_percentage: mf.and_then(|m| m.place_pool_percentage),
        win_pool_amount: mf.map(|m| m.win_pool_amount),
        place_pool_amount: mf.map(|m| m.place_pool_amount),
        money_flow_at: mf.map(|_| *polled_at),
        ..Default::default()
    })
}

/// The RaceUpdate message of a transform's output (race and meeting dates as the core left them).
///
/// # Errors
/// A message naming the field when a value does not fit its message field.
pub fn update_to_pb(u: &RaceUpdate<'_>) -> Result<pb::RaceUpdate, String> {
    let polled_at = timestamp_of(u.polled_at, "polled_at")?;
    let source_generated_at = opt_timestamp(u.source_generated_at, "source_generated_at")?;
    let race_id = u.race_id.as_ref();
    let r = &u.race;
    let race = pb::Race {
        race_id: race_id.to_owned(),
        meeting_id: r.meeting_id.to_string(),
        race_number: int32(r.race_number, "race.race_number")?,
        name: r.name.to_string(),
        status: r.status.to_owned(),
        status_raw: owned(r.status_raw.as_ref()),
        start_time: Some(timestamp_of(r.start_time, "race.start_time")?),
        actual_start: opt_timestamp(r.actual_start, "race.actual_start")?,
        race_date_nz: r.race_date_nz.as_deref().unwrap_or_default().to_owned(),
        start_time_nz: owned(r.start_time_nz.as_ref()),
        tote_start_time: owned(r.tote_start_time.as_ref()),
        r#type: owned(r.race_type.as_ref()),
        country: owned(r.country.as_ref()),
        state: owned(r.state.as_ref()),
        distance: opt_int32(r.distance, "race.distance")?,
        track_condition: owned(r.track_condition.as_ref()),
        track_surface: owned(r.track_surface.as_ref()),
        track_direction: owned(r.track_direction.as_ref()),
        weather: owned(r.weather.as_ref()),
        rail_position: owned(r.rail_position.as_ref()),
        race_class: owned(r.race_class.as_ref()),
        entrant_count: opt_int32(r.entrant_count, "race.entrant_count")?,
        field_size: opt_int32(r.field_size, "race.field_size")?,
        positions_paid: opt_int32(r.positions_paid, "race.positions_paid")?,
        total_prize_money: r.total_prize_money,
        silk_url: owned(r.silk_url.as_ref()),
        silk_base_url: owned(r.silk_base_url.as_ref()),
        video_channels: r.video_channels.iter().map(ToString::to_string).collect(),
        ..Default::default()
    };
    let m = &u.meeting;
    let meeting = pb::Meeting {
        meeting_id: m.meeting_id.to_string(),
        meeting_name: m.meeting_name.to_string(),
        date: m.date.as_deref().unwrap_or_default().to_owned(),
        country: m.country.to_string(),
        state: owned(m.state.as_ref()),
        category: m.category.to_string(),
        category_name: m.category_name.map(str::to_owned),
        track_condition: owned(m.track_condition.as_ref()),
        weather: owned(m.weather.as_ref()),
        ..Default::default()
    };
    let entrants =
        u.entrants.iter().map(|e| entrant_to_pb(e, race_id, &polled_at)).collect::<Result<_, _>>()?;
    let mut money_flow = Vec::with_capacity(u.money_flow.len());
    for row in &u.money_flow {
        money_flow.push(pb::MoneyFlowRow {
            race_id: race_id.to_owned(),
            entrant_id: row.entrant_id.to_string(),
            event_timestamp: Some(polled_at),
            source_generated_at,
            advertised_start: Some(timestamp_of(row.advertised_start, "money_flow.advertised_start")?),
            time_to_start: int32(row.time_to_start, "money_flow.time_to_start")?,
            time_interval: int32(row.time_interval, "money_flow.time_interval")?,
            interval_type: row.interval_type.to_owned(),
            hold_percentage: row.hold_percentage,
            bet_percentage: row.bet_percentage,
            win_pool_total: row.win_pool_total,
            place_pool_total: row.place_pool_total,
            win_pool_amount: row.win_pool_amount,
            place_pool_amount: row.place_pool_amount,
            total_pool_amount: row.total_pool_amount,
            win_pool_percentage: row.win_pool_percentage,
            place_pool_percentage: row.place_pool_percentage,
            incremental_win_amount: row.incremental_win_amount,
            incremental_place_amount: row.incremental_place_amount,
            is_baseline: row.is_baseline,
            fixed_win_odds: row.odds[0].map(to_odds),
            fixed_place_odds: row.odds[1].map(to_odds),
            pool_win_odds: row.odds[2].map(to_odds),
            pool_place_odds: row.odds[3].map(to_odds),
        });
    }
    let odds = u
        .odds
        .iter()
        .map(|c| pb::OddsChange {
            race_id: race_id.to_owned(),
            entrant_id: c.entrant_id.to_string(),
            r#type: c.odds_type.to_owned(),
            odds: c.hundredths.map(to_odds),
            event_timestamp: Some(polled_at),
        })
        .collect();
    let results = match &u.results {
        None => None,
        Some(res) => {
            let mut fixed = String::from("{");
            let entries = dict_order(res.fixed_odds_data.iter().map(|(key, f)| (key.as_str(), f)));
            for (i, (key, f)) in entries.into_iter().enumerate() {
                if i > 0 {
                    fixed.push(',');
                }
                push_str_literal(&mut fixed, key);
                fixed.push_str(":{\"entrant_id\":");
                push_str_literal(&mut fixed, &f.entrant_id);
                fixed.push_str(",\"runner_name\":");
                push_str_literal(&mut fixed, &f.runner_name);
                fixed.push_str(",\"fixed_win_odds\":");
                odds_value(&mut fixed, f.fixed_win_odds);
                fixed.push_str(",\"fixed_place_odds\":");
                odds_value(&mut fixed, f.fixed_place_odds);
                fixed.push('}');
            }
            fixed.push('}');
            Some(pb::RaceResults {
                race_id: race_id.to_owned(),
                results_available: res.results_available,
                results_data_json: documents(&res.results_data),
                dividends_data_json: documents(&res.dividends_data),
                fixed_odds_data_json: fixed,
                result_status: Some(res.result_status.to_owned()),
                photo_finish: res.photo_finish,
                stewards_inquiry: res.stewards_inquiry,
                protest_lodged: res.protest_lodged,
                result_time: Some(timestamp_of(res.result_time, "results.result_time")?),
                ..Default::default()
            })
        }
    };
    let quality = u
        .quality
        .iter()
        .map(|f| pb::QualityFinding {
            check: f.check.to_owned(),
            level: f.level.to_owned(),
            message: f.message.clone(),
            value: f.value,
        })
        .collect();
    let mut moves = Vec::with_capacity(u.moves.len());
    for m in &u.moves {
        moves.push(pb::Move {
            entrant_id: m.entrant_id.to_string(),
            kind: m.kind.as_str().to_owned(),
            time_interval: int32(m.time_interval, "moves.time_interval")?,
            previous_interval: int32(m.previous_interval, "moves.previous_interval")?,
            value: m.value,
        });
    }
    Ok(pb::RaceUpdate {
        race_id: race_id.to_owned(),
        polled_at: Some(polled_at),
        source_generated_at,
        race: Some(race),
        meeting: Some(meeting),
        entrants,
        money_flow,
        odds,
        pools: u.pools.as_ref().map(pools_to_pb).transpose()?,
        results,
        quality,
        moves,
        state: Some(state_to_pb(&u.state)?),
    })
}

/// Give a race without a valid race_date_nz (and its meeting) the NZ date of its start, as
/// services/transformer/engine.run_transform does for the records.
fn fill_race_date(
    message: &mut pb::RaceUpdate,
    update: &RaceUpdate<'_>,
    nz_date: impl Fn(i64) -> Result<String, String>,
) -> Result<(), RequestError> {
    let date = match &update.race.race_date_nz {
        Some(date) => date.to_string(),
        None => nz_date(update.race.start_time).map_err(RequestError::Invalid)?,
    };
    if let Some(race) = message.race.as_mut() {
        race.race_date_nz.clone_from(&date);
    }
    if let Some(meeting) = message.meeting.as_mut() {
        if update.meeting.date.is_none() {
            meeting.date = date;
        }
    }
    Ok(())
}

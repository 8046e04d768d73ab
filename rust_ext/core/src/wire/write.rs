//! The writer's side of the wire: a serialised `WriteRaceUpdateRequest` checked and rendered
//! as the JSON documents of `raceday_write_poll` (services/writer/migrations/0002_write_poll.sql).
//!
//! Every check the write path makes before touching the database happens here, with the
//! messages the writer answers INVALID_ARGUMENT with. The documents hold text PostgreSQL parses
//! with each column type's input function: numbers in their shortest round-trip form, instants
//! as RFC 3339 UTC with microseconds (PostgreSQL keeps no finer precision), the `*_json`
//! documents embedded as JSON values. Absent optional values are left out of their object
//! (`json_to_record` reads a missing key as NULL).

use std::collections::HashSet;
use std::fmt::{self, Write as _};

use prost::Message;
use prost_types::Timestamp;

use super::pb;
use crate::json::{self, Json};
use crate::json_text::push_str_literal;
use crate::moves;
use crate::time::{civil_from_days, is_iso_date};
use crate::vocab::{CATEGORIES, INTERVAL_TYPES, MOVE_KINDS, ODDS_TYPES, RACE_STATUSES, RESULT_STATUSES};

/// Why an update cannot be written: the message the writer answers INVALID_ARGUMENT with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidUpdate(pub String);

impl fmt::Display for InvalidUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidUpdate {}

type Res<T> = Result<T, InvalidUpdate>;

fn require(condition: bool, message: impl FnOnce() -> String) -> Res<()> {
    if condition {
        Ok(())
    } else {
        Err(InvalidUpdate(message()))
    }
}

/// One update, checked and rendered for `raceday_write_poll`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteDocument {
    /// The update's race.
    pub race_id: String,
    /// The poll's identity with the race id, RFC 3339 UTC.
    pub polled_at: String,
    /// When the TAB generated the poll's data (`header.generated_time`), RFC 3339 UTC.
    pub generated_at: Option<String>,
    /// Entities, pools and results only: no time series, no money-flow columns.
    pub baseline: bool,
    /// `{...}`: the minimal meeting.
    pub meeting: String,
    /// `{...}`: the race's columns (`protest` only when the update carried it).
    pub race: String,
    /// `[...]`: unique entrants, the last of a repeated id winning.
    pub entrants: String,
    /// `[...]`, or `None` for a baseline.
    pub money_flow: Option<String>,
    /// `[...]`, or `None` for a baseline.
    pub odds: Option<String>,
    /// `{...}` when the update has pool totals.
    pub pools: Option<String>,
    /// `{...}` when the update has results.
    pub results: Option<String>,
    /// `[...]`: the moves at or above `moves::ALERT_THRESHOLD` (alert candidates for
    /// `race_alerts`), or `None` for a baseline.
    pub alerts: Option<String>,
    /// Rows in `money_flow`.
    pub money_flow_rows: usize,
    /// Rows in `odds`.
    pub odds_rows: usize,
    /// Distinct instants of the series rows, microseconds since the epoch: the partitions
    /// they need (the NZ days are derived by the caller).
    pub series_instants_us: Vec<i64>,
    /// Entrants skipped because they have no id (ids are never invented).
    pub entrants_without_id: usize,
    /// Entrant ids that appeared more than once (the last occurrence was kept).
    pub duplicate_entrant_ids: Vec<String>,
}

/// Decode, check and render a serialised `WriteRaceUpdateRequest`.
///
/// # Errors
/// `InvalidUpdate` when the bytes are not a `WriteRaceUpdateRequest` or the update breaks a
/// rule of the write path (a required field missing, a value outside its vocabulary, ...).
pub fn write_document(request: &[u8]) -> Res<WriteDocument> {
    let request = pb::WriteRaceUpdateRequest::decode(request)
        .map_err(|e| InvalidUpdate(format!("not a WriteRaceUpdateRequest: {e}")))?;
    let update = request.update.unwrap_or_default();
    render(&update, request.baseline)
}

/// Check and render one update (see `write_document`).
///
/// # Errors
/// `InvalidUpdate` as `write_document`.
pub fn render(update: &pb::RaceUpdate, baseline: bool) -> Res<WriteDocument> {
    let race_id = if update.race_id.is_empty() {
        update.race.as_ref().map_or("", |r| &r.race_id)
    } else {
        &update.race_id
    };
    require(!race_id.is_empty(), || "race_id is required".into())?;
    let default_race = pb::Race::default();
    let race = update.race.as_ref().unwrap_or(&default_race);
    require(race.race_id.is_empty() || race.race_id == race_id, || {
        "race.race_id differs from race_id".into()
    })?;
    let polled_at = update.polled_at.as_ref().ok_or_else(|| InvalidUpdate("polled_at is required".into()))?;
    let polled_at = Instant::of(polled_at, "polled_at")?;
    let race_doc = race_document(race)?;
    let default_meeting = pb::Meeting::default();
    let meeting = update.meeting.as_ref().unwrap_or(&default_meeting);
    let meeting_doc = meeting_document(meeting)?;
    require(meeting.meeting_id == race.meeting_id, || {
        "meeting.meeting_id differs from race.meeting_id".into()
    })?;

    let mut doc = WriteDocument {
        race_id: race_id.to_owned(),
        polled_at: polled_at.text.clone(),
        generated_at: update
            .source_generated_at
            .as_ref()
            .map(|ts| Instant::of(ts, "source_generated_at").map(|i| i.text))
            .transpose()?,
        baseline,
        meeting: meeting_doc,
        race: race_doc,
        entrants: String::new(),
        money_flow: None,
        odds: None,
        pools: None,
        results: None,
        alerts: None,
        money_flow_rows: 0,
        odds_rows: 0,
        series_instants_us: Vec::new(),
        entrants_without_id: 0,
        duplicate_entrant_ids: Vec::new(),
    };
    doc.entrants = entrants_document(update, race_id, &polled_at, baseline, &mut doc)?;
    doc.results = update.results.as_ref().map(results_document).transpose()?;
    doc.pools = update.pools.as_ref().map(|p| pools_document(p, &polled_at)).transpose()?;
    if !baseline {
        let mut instants = HashSet::new();
        doc.money_flow = Some(money_flow_document(&update.money_flow, race_id, &mut instants)?);
        doc.odds = Some(odds_document(&update.odds, race_id, &mut instants)?);
        doc.alerts = Some(alerts_document(update)?);
        doc.money_flow_rows = update.money_flow.len();
        doc.odds_rows = update.odds.len();
        let mut instants: Vec<i64> = instants.into_iter().collect();
        instants.sort_unstable();
        doc.series_instants_us = instants;
    }
    Ok(doc)
}

/// A checked instant: its microseconds since the epoch and its RFC 3339 text.
struct Instant {
    micros: i64,
    text: String,
}

/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the instants both PostgreSQL and the
/// services' datetimes can hold.
const MIN_SECONDS: i64 = -62_135_596_800;
const MAX_SECONDS: i64 = 253_402_300_799;

impl Instant {
    fn of(ts: &Timestamp, field: &str) -> Res<Self> {
        require(
            (MIN_SECONDS..=MAX_SECONDS).contains(&ts.seconds) && (0..1_000_000_000).contains(&ts.nanos),
            || format!("{field} is out of range"),
        )?;
        // Sub-microsecond nanos are truncated, as PostgreSQL has no finer precision.
        let micro = i64::from(ts.nanos / 1000);
        let days = ts.seconds.div_euclid(86_400);
        let secs = ts.seconds.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        let text = format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micro:06}Z",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        );
        Ok(Self { micros: ts.seconds * 1_000_000 + micro, text })
    }
}

fn valid_date<'a>(text: &'a str, field: &str) -> Res<&'a str> {
    require(is_iso_date(text), || format!("{field} must be YYYY-MM-DD, got '{}'", excerpt(text)))?;
    Ok(text)
}

fn excerpt(text: &str) -> &str {
    text.char_indices().nth(20).map_or(text, |(i, _)| &text[..i])
}

/// A JSON object being written: members are appended as `"key":value`.
struct Object<'a> {
    out: &'a mut String,
    empty: bool,
}

impl<'a> Object<'a> {
    fn open(out: &'a mut String) -> Self {
        out.push('{');
        Self { out, empty: true }
    }

    fn key(&mut self, key: &str) {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        self.out.push('"');
        self.out.push_str(key);
        self.out.push_str("\":");
    }

    fn text(&mut self, key: &str, value: &str, field: &str) -> Res<()> {
        self.key(key);
        push_string(self.out, value, field)
    }

    fn opt_text(&mut self, key: &str, value: Option<&String>, field: &str) -> Res<()> {
        value.map_or(Ok(()), |v| self.text(key, v, field))
    }

    fn int(&mut self, key: &str, value: impl Into<i64>) {
        self.key(key);
        let _ = write!(self.out, "{}", value.into());
    }

    fn opt_int<T: Into<i64> + Copy>(&mut self, key: &str, value: Option<T>) {
        if let Some(v) = value {
            self.int(key, v);
        }
    }

    fn flag(&mut self, key: &str, value: bool) {
        self.key(key);
        self.out.push_str(if value { "true" } else { "false" });
    }

    fn number(&mut self, key: &str, value: f64, field: &str) -> Res<()> {
        require(value.is_finite(), || format!("{field} must be a finite number"))?;
        self.key(key);
        // Display prints the shortest text that reads back as the same double.
        let _ = write!(self.out, "{value}");
        Ok(())
    }

    fn opt_number(&mut self, key: &str, value: Option<f64>, field: &str) -> Res<()> {
        value.map_or(Ok(()), |v| self.number(key, v, field))
    }

    fn instant(&mut self, key: &str, value: &Instant) {
        self.key(key);
        self.out.push('"');
        self.out.push_str(&value.text);
        self.out.push('"');
    }

    fn opt_timestamp(&mut self, key: &str, value: Option<&Timestamp>, field: &str) -> Res<()> {
        if let Some(ts) = value {
            self.instant(key, &Instant::of(ts, field)?);
        }
        Ok(())
    }

    /// A `*_json` text embedded as a JSON value; empty text is absent.
    fn document(&mut self, key: &str, value: Option<&str>, field: &str) -> Res<()> {
        match value {
            None | Some("") => Ok(()),
            Some(text) => {
                json::read_document::<Json>(text)
                    .map_err(|_| InvalidUpdate(format!("{field} is not valid JSON")))?;
                self.key(key);
                self.out.push_str(text);
                Ok(())
            }
        }
    }

    fn close(self) {
        self.out.push('}');
    }
}

/// A JSON string; NUL cannot be stored in PostgreSQL text.
fn push_string(out: &mut String, value: &str, field: &str) -> Res<()> {
    require(!value.contains('\0'), || format!("{field} contains a NUL character"))?;
    push_str_literal(out, value);
    Ok(())
}

fn one_of(value: &str, vocabulary: &[&str]) -> bool {
    vocabulary.contains(&value)
}

fn race_document(race: &pb::Race) -> Res<String> {
    require(!race.meeting_id.is_empty(), || "race.meeting_id is required".into())?;
    require(!race.name.is_empty(), || "race.name is required".into())?;
    require(one_of(&race.status, &RACE_STATUSES), || {
        format!("race.status must be one of {}", RACE_STATUSES.join(", "))
    })?;
    require(race.race_number >= 0, || "race.race_number must be >= 0".into())?;
    let start =
        race.start_time.as_ref().ok_or_else(|| InvalidUpdate("race.start_time is required".into()))?;
    require(race.r#type.as_deref().map_or(true, |t| one_of(t, &CATEGORIES)), || {
        "race.type must be T, H or G".into()
    })?;
    let date = valid_date(&race.race_date_nz, "race.race_date_nz")?;

    let mut out = String::with_capacity(512);
    let mut o = Object::open(&mut out);
    o.text("meeting_id", &race.meeting_id, "race.meeting_id")?;
    o.int("race_number", race.race_number);
    o.text("name", &race.name, "race.name")?;
    o.text("status", &race.status, "race.status")?;
    o.opt_text("status_raw", race.status_raw.as_ref(), "race.status_raw")?;
    o.instant("start_time", &Instant::of(start, "race.start_time")?);
    o.opt_timestamp("actual_start", race.actual_start.as_ref(), "race.actual_start")?;
    o.text("race_date_nz", date, "race.race_date_nz")?;
    o.opt_text("start_time_nz", race.start_time_nz.as_ref(), "race.start_time_nz")?;
    o.opt_text("tote_start_time", race.tote_start_time.as_ref(), "race.tote_start_time")?;
    o.opt_text("type", race.r#type.as_ref(), "race.type")?;
    o.opt_text("country", race.country.as_ref(), "race.country")?;
    o.opt_text("state", race.state.as_ref(), "race.state")?;
    o.opt_int("distance", race.distance);
    o.opt_text("track_condition", race.track_condition.as_ref(), "race.track_condition")?;
    o.opt_text("track_surface", race.track_surface.as_ref(), "race.track_surface")?;
    o.opt_text("track_direction", race.track_direction.as_ref(), "race.track_direction")?;
    o.opt_text("weather", race.weather.as_ref(), "race.weather")?;
    o.opt_text("rail_position", race.rail_position.as_ref(), "race.rail_position")?;
    o.opt_text("race_class", race.race_class.as_ref(), "race.race_class")?;
    o.opt_int("entrant_count", race.entrant_count);
    o.opt_int("field_size", race.field_size);
    o.opt_int("positions_paid", race.positions_paid);
    o.opt_int("total_prize_money", race.total_prize_money);
    o.opt_text("silk_url", race.silk_url.as_ref(), "race.silk_url")?;
    o.opt_text("silk_base_url", race.silk_base_url.as_ref(), "race.silk_base_url")?;
    if !race.video_channels.is_empty() {
        o.key("video_channels");
        o.out.push('[');
        for (i, channel) in race.video_channels.iter().enumerate() {
            if i > 0 {
                o.out.push(',');
            }
            push_string(o.out, channel, "race.video_channels")?;
        }
        o.out.push(']');
    }
    o.opt_text("protest_reason", race.protest_reason.as_ref(), "race.protest_reason")?;
    if let Some(protest) = race.protest {
        o.flag("protest", protest);
    }
    o.close();
    Ok(out)
}

fn meeting_document(meeting: &pb::Meeting) -> Res<String> {
    require(!meeting.meeting_id.is_empty(), || "meeting.meeting_id is required".into())?;
    require(!meeting.meeting_name.is_empty(), || "meeting.meeting_name is required".into())?;
    require(one_of(&meeting.category, &CATEGORIES), || "meeting.category must be T, H or G".into())?;
    let date = valid_date(&meeting.date, "meeting.date")?;
    let mut out = String::with_capacity(256);
    let mut o = Object::open(&mut out);
    o.text("meeting_id", &meeting.meeting_id, "meeting.meeting_id")?;
    o.text("meeting_name", &meeting.meeting_name, "meeting.meeting_name")?;
    o.text("date", date, "meeting.date")?;
    o.text("country", &meeting.country, "meeting.country")?;
    o.opt_text("state", meeting.state.as_ref(), "meeting.state")?;
    o.text("category", &meeting.category, "meeting.category")?;
    o.opt_text("category_name", meeting.category_name.as_ref(), "meeting.category_name")?;
    o.opt_text("track_condition", meeting.track_condition.as_ref(), "meeting.track_condition")?;
    o.opt_text("weather", meeting.weather.as_ref(), "meeting.weather")?;
    o.close();
    Ok(out)
}

fn entrants_document(
    update: &pb::RaceUpdate,
    race_id: &str,
    polled_at: &Instant,
    baseline: bool,
    doc: &mut WriteDocument,
) -> Res<String> {
    // Unique ids, the last occurrence winning in its own position (as one upsert needs).
    let mut last = std::collections::HashMap::new();
    for (i, entrant) in update.entrants.iter().enumerate() {
        if entrant.entrant_id.is_empty() {
            doc.entrants_without_id += 1;
            continue;
        }
        require(entrant.race_id.is_empty() || entrant.race_id == race_id, || {
            "entrant.race_id differs from race_id".into()
        })?;
        if last.insert(entrant.entrant_id.as_str(), i).is_some() {
            doc.duplicate_entrant_ids.push(entrant.entrant_id.clone());
        }
    }
    let mut out = String::with_capacity(update.entrants.len() * 512 + 2);
    out.push('[');
    let mut first = true;
    for (i, entrant) in update.entrants.iter().enumerate() {
        if last.get(entrant.entrant_id.as_str()) != Some(&i) {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        entrant_object(&mut out, entrant, polled_at, baseline)?;
    }
    out.push(']');
    Ok(out)
}

fn entrant_object(out: &mut String, e: &pb::Entrant, polled_at: &Instant, baseline: bool) -> Res<()> {
    let mut o = Object::open(out);
    o.text("entrant_id", &e.entrant_id, "entrant.entrant_id")?;
    o.int("runner_number", e.runner_number);
    o.text("name", &e.name, "entrant.name")?;
    o.opt_int("barrier", e.barrier);
    o.opt_text("barrier_position", e.barrier_position.as_ref(), "entrant.barrier_position")?;
    o.opt_text("jockey", e.jockey.as_ref(), "entrant.jockey")?;
    o.opt_text("trainer_name", e.trainer_name.as_ref(), "entrant.trainer_name")?;
    o.opt_text("silk_colours", e.silk_colours.as_ref(), "entrant.silk_colours")?;
    o.opt_text("silk_url_64x64", e.silk_url_64x64.as_ref(), "entrant.silk_url_64x64")?;
    o.opt_text("silk_url_128x128", e.silk_url_128x128.as_ref(), "entrant.silk_url_128x128")?;
    o.flag("is_scratched", e.is_scratched);
    o.flag("is_late_scratched", e.is_late_scratched);
    o.opt_timestamp("scratch_time", e.scratch_time.as_ref(), "entrant.scratch_time")?;
    o.flag("favourite", e.favourite);
    o.flag("mover", e.mover);
    o.document("runner_change", e.runner_change_json.as_deref(), "entrant.runner_change_json")?;
    o.opt_number("fixed_win_odds", e.fixed_win_odds, "entrant.fixed_win_odds")?;
    o.opt_number("fixed_place_odds", e.fixed_place_odds, "entrant.fixed_place_odds")?;
    o.opt_number("pool_win_odds", e.pool_win_odds, "entrant.pool_win_odds")?;
    o.opt_number("pool_place_odds", e.pool_place_odds, "entrant.pool_place_odds")?;
    // The money-flow columns only when this poll produced money flow for the runner; the
    // function keeps the stored ones otherwise (money_flow_at present is its signal).
    if e.has_money_flow && !baseline {
        o.opt_number("hold_percentage", e.hold_percentage, "entrant.hold_percentage")?;
        o.opt_number("bet_percentage", e.bet_percentage, "entrant.bet_percentage")?;
        o.opt_number("win_pool_percentage", e.win_pool_percentage, "entrant.win_pool_percentage")?;
        o.opt_number("place_pool_percentage", e.place_pool_percentage, "entrant.place_pool_percentage")?;
        o.opt_int("win_pool_amount", e.win_pool_amount);
        o.opt_int("place_pool_amount", e.place_pool_amount);
        match &e.money_flow_at {
            Some(ts) => o.instant("money_flow_at", &Instant::of(ts, "entrant.money_flow_at")?),
            None => o.instant("money_flow_at", polled_at),
        }
    }
    o.close();
    Ok(())
}

fn money_flow_document(rows: &[pb::MoneyFlowRow], race_id: &str, instants: &mut HashSet<i64>) -> Res<String> {
    let mut out = String::with_capacity(rows.len() * 640 + 2);
    out.push('[');
    for (i, row) in rows.iter().enumerate() {
        require(row.race_id.is_empty() || row.race_id == race_id, || {
            "money_flow.race_id differs from race_id".into()
        })?;
        require(!row.entrant_id.is_empty(), || "money_flow.entrant_id is required".into())?;
        let event = row
            .event_timestamp
            .as_ref()
            .ok_or_else(|| InvalidUpdate("money_flow.event_timestamp is required".into()))?;
        let start = row
            .advertised_start
            .as_ref()
            .ok_or_else(|| InvalidUpdate("money_flow.advertised_start is required".into()))?;
        require(one_of(&row.interval_type, &INTERVAL_TYPES), || {
            format!("money_flow.interval_type must be {}", or_list(&INTERVAL_TYPES))
        })?;
        let event = Instant::of(event, "money_flow.event_timestamp")?;
        instants.insert(event.micros);
        if i > 0 {
            out.push(',');
        }
        let mut o = Object::open(&mut out);
        o.text("entrant_id", &row.entrant_id, "money_flow.entrant_id")?;
        o.instant("event_timestamp", &event);
        o.opt_timestamp(
            "source_generated_at",
            row.source_generated_at.as_ref(),
            "money_flow.source_generated_at",
        )?;
        o.instant("advertised_start", &Instant::of(start, "money_flow.advertised_start")?);
        o.int("time_to_start", row.time_to_start);
        o.int("time_interval", row.time_interval);
        o.text("interval_type", &row.interval_type, "money_flow.interval_type")?;
        o.number("hold_percentage", row.hold_percentage, "money_flow.hold_percentage")?;
        o.number("bet_percentage", row.bet_percentage, "money_flow.bet_percentage")?;
        o.int("win_pool_total", row.win_pool_total);
        o.int("place_pool_total", row.place_pool_total);
        o.int("win_pool_amount", row.win_pool_amount);
        o.int("place_pool_amount", row.place_pool_amount);
        o.int("total_pool_amount", row.total_pool_amount);
        o.opt_number("win_pool_percentage", row.win_pool_percentage, "money_flow.win_pool_percentage")?;
        o.opt_number("place_pool_percentage", row.place_pool_percentage, "money_flow.place_pool_percentage")?;
        o.int("incremental_win_amount", row.incremental_win_amount);
        o.int("incremental_place_amount", row.incremental_place_amount);
        o.flag("is_baseline", row.is_baseline);
        o.opt_number("fixed_win_odds", row.fixed_win_odds, "money_flow.fixed_win_odds")?;
        o.opt_number("fixed_place_odds", row.fixed_place_odds, "money_flow.fixed_place_odds")?;
        o.opt_number("pool_win_odds", row.pool_win_odds, "money_flow.pool_win_odds")?;
        o.opt_number("pool_place_odds", row.pool_place_odds, "money_flow.pool_place_odds")?;
        o.close();
    }
    out.push(']');
    Ok(out)
}

fn odds_document(rows: &[pb::OddsChange], race_id: &str, instants: &mut HashSet<i64>) -> Res<String> {
    let mut out = String::with_capacity(rows.len() * 128 + 2);
    out.push('[');
    for (i, row) in rows.iter().enumerate() {
        require(row.race_id.is_empty() || row.race_id == race_id, || {
            "odds.race_id differs from race_id".into()
        })?;
        require(!row.entrant_id.is_empty(), || "odds.entrant_id is required".into())?;
        require(one_of(&row.r#type, &ODDS_TYPES), || format!("odds.type must be {}", or_list(&ODDS_TYPES)))?;
        let event = row
            .event_timestamp
            .as_ref()
            .ok_or_else(|| InvalidUpdate("odds.event_timestamp is required".into()))?;
        let event = Instant::of(event, "odds.event_timestamp")?;
        instants.insert(event.micros);
        if i > 0 {
            out.push(',');
        }
        let mut o = Object::open(&mut out);
        o.text("entrant_id", &row.entrant_id, "odds.entrant_id")?;
        o.text("type", &row.r#type, "odds.type")?;
        o.opt_number("odds", row.odds, "odds.odds")?;
        o.instant("event_timestamp", &event);
        o.close();
    }
    out.push(']');
    Ok(out)
}

/// The moves worth an alert (value >= `ALERT_THRESHOLD`); `raceday_write_poll` inserts them
/// with the poll's race and time, once per (race, runner, kind, bucket).
fn alerts_document(update: &pb::RaceUpdate) -> Res<String> {
    let mut out = String::from("[");
    for m in &update.moves {
        require(one_of(&m.kind, &MOVE_KINDS), || format!("moves.kind must be {}", or_list(&MOVE_KINDS)))?;
        require(m.value.is_finite(), || "moves.value must be a finite number".into())?;
        require(
            moves::previous_column(i64::from(m.time_interval)) == Some(i64::from(m.previous_interval)),
            || "moves.previous_interval must be the timeline column before time_interval".into(),
        )?;
        // race_alerts refers to the entrant: a move of a runner the update does not carry
        // would fail the whole write on the foreign key.
        require(
            update.entrants.iter().any(|e| e.entrant_id == m.entrant_id) && !m.entrant_id.is_empty(),
            || format!("moves.entrant_id '{}' is not an entrant of the update", excerpt(&m.entrant_id)),
        )?;
        if m.value < moves::ALERT_THRESHOLD {
            continue;
        }
        if out.len() > 1 {
            out.push(',');
        }
        let mut o = Object::open(&mut out);
        o.text("entrant_id", &m.entrant_id, "moves.entrant_id")?;
        o.text("kind", &m.kind, "moves.kind")?;
        o.int("time_interval", m.time_interval);
        o.int("previous_interval", m.previous_interval);
        o.number("value", m.value, "moves.value")?;
        o.close();
    }
    out.push(']');
    Ok(out)
}

fn pools_document(p: &pb::RacePools, polled_at: &Instant) -> Res<String> {
    require(one_of(&p.source, &["tote_pools", "dividends"]), || "pools.source is invalid".into())?;
    let mut out = String::with_capacity(384);
    let mut o = Object::open(&mut out);
    o.int("win_pool_total", p.win_pool_total);
    o.int("place_pool_total", p.place_pool_total);
    o.int("quinella_pool_total", p.quinella_pool_total);
    o.int("trifecta_pool_total", p.trifecta_pool_total);
    o.int("exacta_pool_total", p.exacta_pool_total);
    o.int("first4_pool_total", p.first4_pool_total);
    o.int("total_race_pool", p.total_race_pool);
    o.text("currency", if p.currency.is_empty() { "$" } else { &p.currency }, "pools.currency")?;
    o.int("extracted_pools", p.extracted_pools);
    o.int("data_quality_score", p.data_quality_score);
    o.text("source", &p.source, "pools.source")?;
    match &p.last_updated {
        Some(ts) => o.instant("last_updated", &Instant::of(ts, "pools.last_updated")?),
        None => o.instant("last_updated", polled_at),
    }
    o.close();
    Ok(out)
}

fn results_document(r: &pb::RaceResults) -> Res<String> {
    require(r.result_status.as_deref().map_or(true, |s| one_of(s, &RESULT_STATUSES)), || {
        "results.result_status is invalid".into()
    })?;
    let mut out = String::with_capacity(1024);
    let mut o = Object::open(&mut out);
    o.flag("results_available", r.results_available);
    o.document("results_data", Some(&r.results_data_json), "results.results_data_json")?;
    o.document("dividends_data", Some(&r.dividends_data_json), "results.dividends_data_json")?;
    o.document("fixed_odds_data", Some(&r.fixed_odds_data_json), "results.fixed_odds_data_json")?;
    o.opt_text("result_status", r.result_status.as_ref(), "results.result_status")?;
    o.flag("photo_finish", r.photo_finish);
    o.flag("stewards_inquiry", r.stewards_inquiry);
    o.flag("protest_lodged", r.protest_lodged);
    o.opt_timestamp("result_time", r.result_time.as_ref(), "results.result_time")?;
    o.close();
    Ok(out)
}

/// `a, b, c or d`.
fn or_list(words: &[&str]) -> String {
    match words.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => (*last).to_owned(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(seconds: i64, nanos: i32) -> Option<Timestamp> {
        Some(Timestamp { seconds, nanos })
    }

    /// A valid one-runner poll of race `r1` at 2025-07-17T00:45:00.123456789Z.
    fn update() -> pb::RaceUpdate {
        let polled = ts(1_752_713_100, 123_456_789);
        pb::RaceUpdate {
            race_id: "r1".into(),
            polled_at: polled,
            race: Some(pb::Race {
                race_id: "r1".into(),
                meeting_id: "m1".into(),
                race_number: 3,
                name: "The \"Cup\"\n".into(),
                status: "open".into(),
                start_time: ts(1_752_713_400, 0),
                race_date_nz: "2025-07-17".into(),
                video_channels: vec!["a".into(), "b".into()],
                ..Default::default()
            }),
            meeting: Some(pb::Meeting {
                meeting_id: "m1".into(),
                meeting_name: "Awapuni".into(),
                date: "2025-07-17".into(),
                country: "NZ".into(),
                category: "T".into(),
                ..Default::default()
            }),
            entrants: vec![pb::Entrant {
                entrant_id: "e1".into(),
                runner_number: 1,
                name: "Horse".into(),
                has_money_flow: true,
                hold_percentage: Some(12.5),
                bet_percentage: Some(0.1 + 0.2),
                win_pool_amount: Some(1234),
                runner_change_json: Some("{\"a\":[1,2.5]}".into()),
                fixed_win_odds: Some(3.4),
                ..Default::default()
            }],
            money_flow: vec![pb::MoneyFlowRow {
                entrant_id: "e1".into(),
                event_timestamp: polled,
                advertised_start: ts(1_752_713_400, 0),
                time_to_start: 5,
                time_interval: 5,
                interval_type: "2m".into(),
                hold_percentage: 12.5,
                ..Default::default()
            }],
            odds: vec![pb::OddsChange {
                entrant_id: "e1".into(),
                r#type: "fixed_win".into(),
                odds: None,
                event_timestamp: polled,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn error(u: &pb::RaceUpdate) -> String {
        render(u, false).err().map(|e| e.0).unwrap_or_default()
    }

    #[test]
    fn renders_every_section_with_instants_to_the_microsecond() -> Result<(), InvalidUpdate> {
        let doc = render(&update(), false)?;
        assert_eq!(doc.race_id, "r1");
        assert_eq!(doc.polled_at, "2025-07-17T00:45:00.123456Z");
        assert_eq!(
            doc.race,
            "{\"meeting_id\":\"m1\",\"race_number\":3,\"name\":\"The \\\"Cup\\\"\\n\",\"status\":\"open\",\
             \"start_time\":\"2025-07-17T00:50:00.000000Z\",\"race_date_nz\":\"2025-07-17\",\
             \"video_channels\":[\"a\",\"b\"]}"
        );
        assert!(doc.entrants.contains("\"runner_change\":{\"a\":[1,2.5]}"), "{}", doc.entrants);
        assert!(doc.entrants.contains("\"bet_percentage\":0.30000000000000004"), "{}", doc.entrants);
        assert!(doc.entrants.contains("\"money_flow_at\":\"2025-07-17T00:45:00.123456Z\""));
        assert_eq!(doc.money_flow_rows, 1);
        assert_eq!(
            doc.odds.as_deref(),
            Some("[{\"entrant_id\":\"e1\",\"type\":\"fixed_win\",\"event_timestamp\":\"2025-07-17T00:45:00.123456Z\"}]")
        );
        assert_eq!(doc.series_instants_us, vec![1_752_713_100_123_456]);
        assert!(doc.pools.is_none() && doc.results.is_none());
        Ok(())
    }

    #[test]
    fn a_baseline_has_no_series_and_no_money_flow_columns() -> Result<(), InvalidUpdate> {
        let doc = render(&update(), true)?;
        assert!(doc.money_flow.is_none() && doc.odds.is_none());
        assert!(doc.series_instants_us.is_empty());
        assert!(!doc.entrants.contains("hold_percentage") && !doc.entrants.contains("money_flow_at"));
        Ok(())
    }

    #[test]
    fn entrants_without_id_are_skipped_and_the_last_duplicate_wins() -> Result<(), InvalidUpdate> {
        let mut u = update();
        let mut second = u.entrants[0].clone();
        second.name = "Renamed".into();
        u.entrants.insert(0, pb::Entrant { name: "no id".into(), ..Default::default() });
        u.entrants.push(second);
        let doc = render(&u, false)?;
        assert_eq!(doc.entrants_without_id, 1);
        assert_eq!(doc.duplicate_entrant_ids, vec!["e1".to_owned()]);
        assert_eq!(doc.entrants.matches("entrant_id").count(), 1);
        assert!(doc.entrants.contains("Renamed"));
        Ok(())
    }

    fn a_move(kind: &str, value: f64) -> pb::Move {
        pb::Move {
            entrant_id: "e1".into(),
            kind: kind.into(),
            time_interval: 5,
            previous_interval: 10,
            value,
        }
    }

    #[test]
    fn moves_at_or_above_the_threshold_become_alert_candidates() -> Result<(), InvalidUpdate> {
        let mut u = update();
        u.moves = vec![a_move("win_money", 4.999), a_move("place_money", 5.0), a_move("win_price", -12.5)];
        let doc = render(&u, false)?;
        assert_eq!(
            doc.alerts.as_deref(),
            Some(
                "[{\"entrant_id\":\"e1\",\"kind\":\"place_money\",\"time_interval\":5,\
                 \"previous_interval\":10,\"value\":5}]"
            )
        );
        // A baseline stores no series, alerts included.
        assert!(render(&u, true)?.alerts.is_none());
        u.moves.clear();
        assert_eq!(render(&u, false)?.alerts.as_deref(), Some("[]"));
        Ok(())
    }

    /// The message a valid update gets refused with once `change` is applied to it.
    fn refused(change: impl FnOnce(&mut pb::RaceUpdate)) -> String {
        let mut u = update();
        change(&mut u);
        error(&u)
    }

    fn race(u: &mut pb::RaceUpdate) -> &mut pb::Race {
        u.race.get_or_insert_with(Default::default)
    }

    #[test]
    fn refuses_what_the_write_path_refuses() {
        assert_eq!(refused(|u| u.polled_at = None), "polled_at is required");
        assert_eq!(
            refused(|u| {
                u.race_id.clear();
                race(u).race_id.clear();
            }),
            "race_id is required"
        );
        assert_eq!(
            refused(|u| race(u).status = "Open".into()),
            "race.status must be one of open, closed, interim, final, abandoned, unknown"
        );
        assert_eq!(
            refused(|u| race(u).race_date_nz = "17/07/2025".into()),
            "race.race_date_nz must be YYYY-MM-DD, got '17/07/2025'"
        );
        assert_eq!(
            refused(|u| u.meeting.get_or_insert_with(Default::default).meeting_id = "m2".into()),
            "meeting.meeting_id differs from race.meeting_id"
        );
        assert_eq!(
            refused(|u| u.money_flow[0].interval_type = "1m".into()),
            "money_flow.interval_type must be 5m, 2m, 30s or live"
        );
        assert_eq!(
            refused(|u| u.odds[0].r#type = "win".into()),
            "odds.type must be fixed_win, fixed_place, pool_win or pool_place"
        );
        assert_eq!(
            refused(|u| u.money_flow[0].hold_percentage = f64::NAN),
            "money_flow.hold_percentage must be a finite number"
        );
        assert_eq!(
            refused(|u| u.entrants[0].runner_change_json = Some("{\"a\":".into())),
            "entrant.runner_change_json is not valid JSON"
        );
        assert_eq!(refused(|u| u.entrants[0].name = "a\0b".into()), "entrant.name contains a NUL character");
        assert_eq!(refused(|u| u.polled_at = ts(MAX_SECONDS + 1, 0)), "polled_at is out of range");
        assert_eq!(
            refused(|u| u.pools = Some(pb::RacePools { source: "guess".into(), ..Default::default() })),
            "pools.source is invalid"
        );
        assert_eq!(
            refused(|u| u.moves = vec![a_move("win", 6.0)]),
            "moves.kind must be win_money, place_money or win_price"
        );
        assert_eq!(
            refused(|u| u.moves = vec![pb::Move { previous_interval: 15, ..a_move("win_money", 6.0) }]),
            "moves.previous_interval must be the timeline column before time_interval"
        );
        assert_eq!(
            refused(|u| u.moves = vec![pb::Move { entrant_id: "e9".into(), ..a_move("win_money", 6.0) }]),
            "moves.entrant_id 'e9' is not an entrant of the update"
        );
        assert_eq!(
            refused(|u| u.moves = vec![a_move("win_money", f64::INFINITY)]),
            "moves.value must be a finite number"
        );
        assert!(write_document(b"\xff\xff").is_err());
    }
}

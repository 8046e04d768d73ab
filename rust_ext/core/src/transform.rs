//! The transform (money-flow.md): one payload + poll time + prior state -> race update.

use std::borrow::Cow;
use std::sync::Arc;

use crate::error::PayloadError;
use crate::fields::{
    excerpt, expect_array, expect_object, flag, is_terminal, normalise_status, odds_hundredths, opt_epoch_ms,
    opt_int, opt_text, product_index, req_int, req_object, req_text, text_or_empty, At, Findings, I32_MAX,
    PRODUCTS,
};
use crate::hash::{FastMap, FastSet};
use crate::json::{Json, Kind, Scalar};
use crate::moves::{self, RunnerColumns};
use crate::numeric::{self, MAX_EPOCH_S};
use crate::payload::{decode, require_object_root, RawData, RawRace, RawRoot, RawRunner};
use crate::state::{BucketLatest, LastOdds, Pools, PriorState};
use crate::time::{is_iso_date, parse_rfc3339_ms};
use crate::update::{
    EntrantMoneyFlow, EntrantRecord, FixedOdds, MeetingRecord, MoneyFlowRow, MoveRecord, OddsChange,
    RaceRecord, RaceUpdate, ResultsRecord, ODDS_TYPES,
};

/// Why a transform failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransformError {
    /// The payload is malformed (`PayloadDecodeError` / `PayloadSchemaError`).
    Payload(PayloadError),
    /// An argument other than the payload is invalid (`ValueError`).
    Argument(String),
}

impl From<PayloadError> for TransformError {
    fn from(e: PayloadError) -> Self {
        TransformError::Payload(e)
    }
}

impl std::fmt::Display for TransformError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransformError::Payload(e) => e.fmt(f),
            TransformError::Argument(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for TransformError {}

/// Largest accepted pool total in dollars (10^11 dollars = 10^13 cents, far below 2^53).
pub const MAX_POOL_DOLLARS: f64 = 1e11;
/// Largest accepted single money-tracker percentage.
pub const MAX_TRACKER_PERCENT: f64 = 100.0;

/// Transforms one poll of one race.
///
/// # Errors
/// `TransformError::Payload` for a malformed payload, `TransformError::Argument` for a poll
/// time out of range or an inconsistent prior state.
pub fn transform<'a>(
    payload: &'a [u8],
    polled_at: i64,
    prior: &PriorState,
) -> Result<RaceUpdate<'a>, TransformError> {
    numeric::check_epoch_ms(polled_at).map_err(|e| TransformError::Argument(e.0))?;
    validate_state(prior)?;
    let root: RawRoot<'a> = decode(payload)?;
    require_object_root(root.kind)?;
    let mut out = Findings::default();
    let source_generated_at = generated_time(&root, &mut out);
    let data = root.data;
    req_object("data", data.kind)?;
    if let Scalar::Str(e) = &data.error {
        if !e.is_empty() {
            return Err(PayloadError::schema(format!(
                "data.error: upstream reported an error: {}",
                excerpt(e, 200)
            ))
            .into());
        }
    }
    let RawData { race, runners, money_tracker, tote_pools, results, dividends, .. } = data;
    let (race, meeting_name) = read_race(race, &mut out)?;
    if !prior.race_id.is_empty() && prior.race_id != race.race_id {
        return Err(TransformError::Argument(format!(
            "prior_state.race_id {:?} does not match the payload's race {:?}",
            prior.race_id, race.race_id
        )));
    }
    let meeting = meeting_of(&race, meeting_name);
    let adv_s = race.start_time / 1000;
    let status = race.status;
    let open = status == "open";

    let mut entrants = read_runners(runners, &mut out)?;
    let tracker = read_tracker(money_tracker, &entrants, &mut out);
    let pools = read_pools(tote_pools, &dividends, &race.race_id, polled_at, prior, &mut out)?;

    // §4: which polls produce money flow.
    let mut money_flow = Vec::new();
    let mut new_buckets = bucket_map(&prior.buckets);
    let win_place = pools.as_ref().map(|p| (p.win_pool_total, p.place_pool_total));
    let tracker_rows = tracker.as_ref().map_or(0, |t| t.rows);
    if open {
        let why_not = match win_place {
            None => Some("no pool totals in this poll"),
            Some((0, 0)) => Some("win and place pool totals are 0"),
            Some(_) if tracker_rows == 0 => Some("money tracker absent or empty"),
            Some(_) => None,
        };
        if let Some(why) = why_not {
            out.add("no_money_flow", "info", format!("no money flow: {why}"), None);
        }
    }
    // Per entrant (index-aligned with `entrants`): its cells in the previous and this column.
    let mut columns: Vec<RunnerColumns> = Vec::new();
    let mut bucket_of_poll = None;
    if let (true, Some((wc, pc)), Some(tracker)) = (open, win_place, tracker.as_ref()) {
        if (wc > 0 || pc > 0) && tracker.rows > 0 {
            let tts = numeric::time_to_start_unchecked(adv_s, polled_at);
            let b = numeric::bucket(tts);
            bucket_of_poll = Some(b);
            let previous_col = moves::previous_column(b);
            columns = entrants
                .iter()
                .map(|e| RunnerColumns { scratched: e.scratched(), ..Default::default() })
                .collect();
            for (entrant, column) in
                entrants.iter_mut().zip(columns.iter_mut()).filter(|(e, _)| !e.scratched())
            {
                let (h, bet) = tracker.shares(&entrant.entrant_id);
                let a = numeric::pool_amounts(h, wc, pc).map_err(|_| {
                    PayloadError::schema(format!(
                        "data.money_tracker: amounts of entrant {} are out of range",
                        entrant.entrant_id
                    ))
                })?;
                let id: Arc<str> = match new_buckets.get_key_value(entrant.entrant_id.as_ref()) {
                    Some((id, _)) => Arc::clone(id),
                    None => Arc::from(entrant.entrant_id.as_ref()),
                };
                let history = new_buckets.entry(Arc::clone(&id)).or_default();
                let effective_before = effective(history);
                let previous = effective_before
                    .iter()
                    .rfind(|x| x.time_interval > b)
                    .map(|x| (x.win_pool_amount, x.place_pool_amount));
                // The previous column's cell: its latest poll if that bucket is effective (the
                // timeline serves no other); this poll, below it, leaves its effectiveness as is.
                column.previous = previous_col
                    .and_then(|p| effective_before.iter().find(|x| x.time_interval == p))
                    .map(|x| x.cell());
                let (inc_win, inc_place, is_baseline) = match previous {
                    Some((win, place)) => (a.win - win, a.place - place, false),
                    None => (a.win, a.place, true),
                };
                let this = BucketLatest {
                    entrant_id: id,
                    time_interval: b,
                    polled_at,
                    row_id: None,
                    win_pool_amount: a.win,
                    place_pool_amount: a.place,
                    incremental_win_amount: inc_win,
                    incremental_place_amount: inc_place,
                    fixed_win_odds: entrant.odds[0].map(to_odds),
                    pool_win_odds: entrant.odds[2].map(to_odds),
                };
                column.current = Some(this.cell());
                if !record_poll(history, this) {
                    out.add(
                        "increment_invariant",
                        "error",
                        format!(
                            "entrant {}: the poll in bucket {b} is older than a stored poll in the same or a lower bucket",
                            entrant.entrant_id
                        ),
                        None,
                    );
                }
                let hold = round2(h)?;
                let bet_pct = round2(bet)?;
                let win_pct = a.win_pct.map(round2).transpose()?;
                let place_pct = a.place_pct.map(round2).transpose()?;
                money_flow.push(MoneyFlowRow {
                    entrant_id: entrant.entrant_id.clone(),
                    advertised_start: race.start_time,
                    time_to_start: tts,
                    time_interval: b,
                    interval_type: numeric::interval_type(tts),
                    hold_percentage: hold,
                    bet_percentage: bet_pct,
                    win_pool_total: wc,
                    place_pool_total: pc,
                    win_pool_amount: a.win,
                    place_pool_amount: a.place,
                    total_pool_amount: a.total,
                    win_pool_percentage: win_pct,
                    place_pool_percentage: place_pct,
                    incremental_win_amount: inc_win,
                    incremental_place_amount: inc_place,
                    is_baseline,
                    odds: entrant.odds,
                });
                entrant.money_flow = Some(EntrantMoneyFlow {
                    hold_percentage: hold,
                    bet_percentage: bet_pct,
                    win_pool_percentage: win_pct,
                    place_pool_percentage: place_pct,
                    win_pool_amount: a.win,
                    place_pool_amount: a.place,
                });
            }
        }
    }

    let moves = match bucket_of_poll.and_then(|b| moves::previous_column(b).map(|p| (b, p))) {
        Some((b, p)) => moves::moves(&columns)
            .into_iter()
            .filter_map(|m| {
                entrants.get(m.runner).map(|e| MoveRecord {
                    entrant_id: e.entrant_id.clone(),
                    kind: m.kind,
                    time_interval: b,
                    previous_interval: p,
                    value: m.value,
                })
            })
            .collect(),
        None => Vec::new(),
    };
    let (odds, new_odds) = odds_changes(&entrants, prior);
    let results = read_results(results, dividends, &entrants, status, polled_at, prior, &mut out)?;
    quality_checks(&race, &entrants, tracker.as_ref(), pools.as_ref(), prior, &mut out);

    let mut quality = out.0;
    quality.sort_by(|a, b| (a.check, &a.message).cmp(&(b.check, &b.message)));

    let state = PriorState {
        race_id: race.race_id.to_string(),
        buckets: flatten_buckets(new_buckets),
        odds: new_odds,
        status: Some(status.to_owned()),
        start_time: Some(race.start_time),
        protest: prior.protest,
        pools: pools.clone().or_else(|| prior.pools.clone()),
        photo_finish: results.as_ref().map_or(prior.photo_finish, |r| r.photo_finish),
        stewards_inquiry: results.as_ref().map_or(prior.stewards_inquiry, |r| r.stewards_inquiry),
        protest_lodged: results.as_ref().map_or(prior.protest_lodged, |r| r.protest_lodged),
        result_status: results
            .as_ref()
            .map_or_else(|| prior.result_status.clone(), |r| Some(r.result_status.to_owned())),
        result_time: results.as_ref().map_or(prior.result_time, |r| Some(r.result_time)),
    };
    Ok(RaceUpdate {
        race_id: race.race_id.clone(),
        polled_at,
        source_generated_at,
        race,
        meeting,
        entrants,
        money_flow,
        odds,
        pools,
        results,
        quality,
        moves,
        state,
    })
}

fn round2(x: f64) -> Result<f64, PayloadError> {
    numeric::round2(x).map_err(|_| PayloadError::schema("data.money_tracker: percentage out of range"))
}

fn validate_state(prior: &PriorState) -> Result<(), TransformError> {
    // A stored price of 0 is a price (moves define nothing against it), so 0 is accepted here.
    for (i, b) in prior.buckets.iter().enumerate() {
        for (name, price) in [("fixed_win_odds", b.fixed_win_odds), ("pool_win_odds", b.pool_win_odds)] {
            if let Some(x) = price {
                if !(x.is_finite() && (0.0..1e7).contains(&x)) {
                    return Err(TransformError::Argument(format!(
                        "prior_state.buckets[{i}].{name}: {x} is not a valid price"
                    )));
                }
            }
        }
    }
    for (i, o) in prior.odds.iter().enumerate() {
        if let Some(x) = o.odds {
            if !(x.is_finite() && x > 0.0 && x < 1e7) {
                return Err(TransformError::Argument(format!(
                    "prior_state.odds[{i}].odds: {x} is not a valid price"
                )));
            }
        }
    }
    Ok(())
}

fn generated_time(root: &RawRoot<'_>, out: &mut Findings) -> Option<i64> {
    if !expect_object("header", root.header.kind, out) {
        return None;
    }
    match &root.header.generated_time {
        Scalar::Absent | Scalar::Null => None,
        Scalar::Str(s) => {
            let ms = parse_rfc3339_ms(s);
            if ms.is_none() {
                out.invalid("header.generated_time: expected an RFC 3339 time".to_owned());
            }
            ms
        }
        other => {
            out.invalid(format!("header.generated_time: expected string, got {}", other.kind().name()));
            None
        }
    }
}

fn read_race<'a>(
    race: RawRace<'a>,
    out: &mut Findings,
) -> Result<(RaceRecord<'a>, Cow<'a, str>), PayloadError> {
    req_object("data.race", race.kind)?;
    let race_id = req_text("data.race.event_id", race.event_id)?;
    let meeting_id = req_text("data.race.meeting_id", race.meeting_id)?;
    let adv = req_int("data.race.advertised_start", &race.advertised_start, 0, MAX_EPOCH_S)?;
    let race_number = match &race.race_number {
        Scalar::Absent | Scalar::Null => {
            out.invalid("data.race.race_number: missing".to_owned());
            0
        }
        v => opt_int("data.race.race_number", v, 0, I32_MAX, out).unwrap_or(0),
    };
    let meeting_name = text_or_empty("data.race.meeting_name", race.meeting_name, out);
    let name = text_or_empty("data.race.description", race.description, out);
    let (status, status_raw) = match race.status {
        Scalar::Str(s) => (normalise_status(Some(&s)), Some(s)),
        Scalar::Absent | Scalar::Null => (normalise_status(None), None),
        other => {
            out.invalid(format!("data.race.status: expected string, got {}", other.kind().name()));
            ("unknown", None)
        }
    };
    if status == "unknown" {
        let message = match &status_raw {
            Some(raw) => format!("unknown race status \"{raw}\""),
            None => "race status is missing".to_owned(),
        };
        out.add("unknown_status", "warning", message, None);
    }
    let actual_start = opt_epoch_ms("data.race.actual_start", &race.actual_start, out);
    // Without a valid date from the payload the date stays absent: Python derives it from the
    // advertised start with services/common/nztime, the one NZ calendar in the codebase.
    let race_date_nz = match race.race_date_nz {
        Scalar::Str(s) if is_iso_date(&s) => Some(s),
        Scalar::Absent | Scalar::Null => None,
        other => {
            let got = match &other {
                Scalar::Str(_) => "a string that is not YYYY-MM-DD".to_owned(),
                o => o.kind().name().to_owned(),
            };
            out.invalid(format!("data.race.race_date_nz: expected YYYY-MM-DD, got {got}"));
            None
        }
    };
    let start_time_nz = opt_text("data.race.start_time_nz", race.start_time_nz, out);
    let tote_start_time = opt_text("data.race.tote_start_time", race.tote_start_time, out);
    let race_type = opt_text("data.race.type", race.race_type, out);
    let country = opt_text("data.race.country", race.country, out);
    let state = opt_text("data.race.state", race.state, out);
    let distance = opt_int("data.race.distance", &race.distance, 0, I32_MAX, out);
    let track_condition = opt_text("data.race.track_condition", race.track_condition, out);
    let track_surface = opt_text("data.race.track_surface", race.track_surface, out);
    let track_direction = opt_text("data.race.track_direction", race.track_direction, out);
    let weather = opt_text("data.race.weather", race.weather, out);
    let rail_position = opt_text("data.race.rail_position", race.rail_position, out);
    let race_class = opt_text("data.race.class", race.race_class, out);
    let entrant_count = opt_int("data.race.entrant_count", &race.entrant_count, 0, I32_MAX, out);
    let field_size = opt_int("data.race.field_size", &race.field_size, 0, I32_MAX, out);
    let positions_paid = opt_int("data.race.positions_paid", &race.positions_paid, 0, I32_MAX, out);
    let total_prize_money = if expect_object("data.race.prize_monies", race.prize_monies.kind, out) {
        dollars_to_cents("data.race.prize_monies.total_value", &race.prize_monies.total_value, out)
    } else {
        None
    };
    let silk_url = opt_text("data.race.silk_url", race.silk_url, out);
    let silk_base_url = opt_text("data.race.silk_base_url", race.silk_base_url, out);
    let mut video_channels = Vec::new();
    if expect_array("data.race.video_channels", race.video_channels.kind, out) {
        for (i, item) in race.video_channels.items.into_iter().enumerate() {
            match item {
                Scalar::Str(s) => video_channels.push(s),
                other => out.invalid(format!(
                    "data.race.video_channels[{i}]: expected string, got {}",
                    other.kind().name()
                )),
            }
        }
    }
    Ok((
        RaceRecord {
            race_id,
            meeting_id,
            race_number,
            name,
            status,
            status_raw,
            start_time: adv * 1000,
            actual_start,
            race_date_nz,
            start_time_nz,
            tote_start_time,
            race_type,
            country,
            state,
            distance,
            track_condition,
            track_surface,
            track_direction,
            weather,
            rail_position,
            race_class,
            entrant_count,
            field_size,
            positions_paid,
            total_prize_money,
            silk_url,
            silk_base_url,
            video_channels,
        },
        meeting_name,
    ))
}

fn dollars_to_cents(path: &str, v: &Scalar<'_>, out: &mut Findings) -> Option<i64> {
    match v.as_f64() {
        Some(x) if (0.0..=MAX_POOL_DOLLARS).contains(&x) => numeric::round_half_up(x * 100.0).ok(),
        Some(_) => {
            out.invalid(format!("{path}: number out of range"));
            None
        }
        None if v.kind().is_missing() => None,
        None => {
            out.invalid(format!("{path}: expected number, got {}", v.kind().name()));
            None
        }
    }
}

fn meeting_of<'a>(race: &RaceRecord<'a>, meeting_name: Cow<'a, str>) -> MeetingRecord<'a> {
    MeetingRecord {
        meeting_id: race.meeting_id.clone(),
        meeting_name,
        date: race.race_date_nz.clone(),
        country: race.country.clone().unwrap_or(Cow::Borrowed("")),
        state: race.state.clone(),
        category: race.race_type.clone().unwrap_or(Cow::Borrowed("")),
        category_name: match race.race_type.as_deref() {
            Some("T") => Some("Thoroughbred Horse Racing"),
            Some("H") => Some("Harness Horse Racing"),
            Some("G") => Some("Greyhound Racing"),
            _ => None,
        },
        track_condition: race.track_condition.clone(),
        weather: race.weather.clone(),
    }
}

fn read_runners<'a>(
    runners: crate::json::Items<RawRunner<'a>>,
    out: &mut Findings,
) -> Result<Vec<EntrantRecord<'a>>, PayloadError> {
    let mut entrants: Vec<EntrantRecord<'a>> = Vec::new();
    if !expect_array("data.runners", runners.kind, out) {
        return Ok(entrants);
    }
    let mut seen: FastSet<Cow<'a, str>> = FastSet::default();
    for (i, r) in runners.items.into_iter().enumerate() {
        let p = format!("data.runners[{i}]");
        if r.kind != Kind::Object {
            out.add(
                "invalid_runner",
                "warning",
                format!("{p}: expected object, got {}", r.kind.name()),
                None,
            );
            continue;
        }
        let entrant_id = match req_text(At(&p, "entrant_id"), r.entrant_id) {
            Ok(id) => id,
            Err(e) => {
                out.add("invalid_runner", "warning", e.message, None);
                continue;
            }
        };
        let runner_number = match req_int(At(&p, "runner_number"), &r.runner_number, 0, I32_MAX) {
            Ok(n) => n,
            Err(e) => {
                out.add("invalid_runner", "warning", e.message, None);
                continue;
            }
        };
        if !seen.insert(entrant_id.clone()) {
            out.add(
                "invalid_runner",
                "warning",
                format!("{p}.entrant_id: duplicate of an earlier runner"),
                None,
            );
            continue;
        }
        let odds = if expect_object(At(&p, "odds"), r.odds.kind, out) {
            [&r.odds.fixed_win, &r.odds.fixed_place, &r.odds.pool_win, &r.odds.pool_place]
                .map(odds_hundredths)
        } else {
            [None; 4]
        };
        if !r.runner_change.is_finite() {
            return Err(PayloadError::schema(format!("{p}.runner_change: number out of range")));
        }
        entrants.push(EntrantRecord {
            entrant_id,
            runner_number,
            name: text_or_empty(At(&p, "name"), r.name, out),
            barrier: opt_int(At(&p, "barrier"), &r.barrier, 0, I32_MAX, out),
            barrier_position: opt_text(At(&p, "barrier_position"), r.barrier_position, out),
            jockey: opt_text(At(&p, "jockey"), r.jockey, out),
            trainer_name: opt_text(At(&p, "trainer_name"), r.trainer_name, out),
            silk_colours: opt_text(At(&p, "silk_colours"), r.silk_colours, out),
            silk_url_64x64: opt_text(At(&p, "silk_url_64x64"), r.silk_url_64x64, out),
            silk_url_128x128: opt_text(At(&p, "silk_url_128x128"), r.silk_url_128x128, out),
            is_scratched: flag(At(&p, "is_scratched"), &r.is_scratched, out),
            is_late_scratched: flag(At(&p, "is_late_scratched"), &r.is_late_scratched, out),
            scratch_time: opt_epoch_ms(At(&p, "scratch_time"), &r.scratch_time, out),
            favourite: flag(At(&p, "favourite"), &r.favourite, out),
            mover: flag(At(&p, "mover"), &r.mover, out),
            runner_change: match r.runner_change {
                Json::Missing => Json::Null,
                v => v,
            },
            odds,
            money_flow: None,
        });
    }
    Ok(entrants)
}

/// The money tracker of a payload summed per entrant (§3).
#[derive(Debug, Clone, PartialEq)]
pub struct TrackerSummary {
    /// Rows in `data.money_tracker.entrants`.
    pub rows: usize,
    /// (entrant id, H, B) in order of first appearance.
    pub shares: Vec<(String, f64, f64)>,
    /// Distinct ids that are not runners.
    pub unknown_ids: usize,
    /// Sum of H over all ids (the hold-sum check of §11).
    pub hold_sum: f64,
}

/// Aggregates the money tracker of a payload (for tests and diagnostics); `None` without one.
///
/// # Errors
/// As `transform` for undecodable payloads.
pub fn money_tracker(payload: &[u8]) -> Result<Option<TrackerSummary>, PayloadError> {
    let root: RawRoot<'_> = decode(payload)?;
    require_object_root(root.kind)?;
    let mut out = Findings::default();
    let entrants = read_runners(root.data.runners, &mut out)?;
    Ok(read_tracker(root.data.money_tracker, &entrants, &mut out).map(|t| TrackerSummary {
        rows: t.rows,
        shares: t.shares.iter().map(|(id, h, b)| (id.to_string(), *h, *b)).collect(),
        unknown_ids: t.unknown_ids,
        hold_sum: t.hold_sum(),
    }))
}

/// Aggregated money tracker (§3).
#[derive(Debug)]
pub struct Tracker<'a> {
    /// Rows in the array (valid or not).
    pub rows: usize,
    /// Rows that were invalid in some way.
    pub invalid_rows: usize,
    /// Per id in order of first appearance: (id, H, B).
    pub shares: Vec<(Cow<'a, str>, f64, f64)>,
    index: FastMap<Cow<'a, str>, usize>,
    /// Distinct ids that are not runners.
    pub unknown_ids: usize,
}

impl Tracker<'_> {
    /// (H, B) of an entrant; (0, 0) without rows.
    #[must_use]
    pub fn shares(&self, entrant_id: &str) -> (f64, f64) {
        self.index.get(entrant_id).map_or((0.0, 0.0), |&i| (self.shares[i].1, self.shares[i].2))
    }

    /// Sum of H over all ids, in order of first appearance.
    #[must_use]
    pub fn hold_sum(&self) -> f64 {
        self.shares.iter().fold(0.0, |s, (_, h, _)| s + h)
    }
}

fn tracker_value(v: &Scalar<'_>) -> Option<f64> {
    v.as_f64().filter(|x| (0.0..=MAX_TRACKER_PERCENT).contains(x))
}

fn read_tracker<'a>(
    tracker: crate::payload::RawTracker<'a>,
    entrants: &[EntrantRecord<'a>],
    out: &mut Findings,
) -> Option<Tracker<'a>> {
    if !expect_object("data.money_tracker", tracker.kind, out) {
        return None;
    }
    let mut t =
        Tracker { rows: 0, invalid_rows: 0, shares: Vec::new(), index: FastMap::default(), unknown_ids: 0 };
    if !expect_array("data.money_tracker.entrants", tracker.entrants.kind, out) {
        return Some(t);
    }
    t.rows = tracker.entrants.items.len();
    for row in tracker.entrants.items {
        let id = match row.entrant_id {
            Scalar::Str(s) if row.kind == Kind::Object && !s.is_empty() => s,
            _ => {
                t.invalid_rows += 1;
                continue;
            }
        };
        let hold = tracker_value(&row.hold_percentage);
        let bet = tracker_value(&row.bet_percentage);
        if hold.is_none() || bet.is_none() {
            t.invalid_rows += 1;
        }
        let i = match t.index.get(&id) {
            Some(&i) => i,
            None => {
                t.shares.push((id.clone(), 0.0, 0.0));
                t.index.insert(id, t.shares.len() - 1);
                t.shares.len() - 1
            }
        };
        t.shares[i].1 += hold.unwrap_or(0.0);
        t.shares[i].2 += bet.unwrap_or(0.0);
    }
    let runners: FastSet<&str> = entrants.iter().map(|e| e.entrant_id.as_ref()).collect();
    t.unknown_ids = t.shares.iter().filter(|(id, _, _)| !runners.contains(id.as_ref())).count();
    Some(t)
}

fn read_pools(
    tote_pools: crate::json::Items<crate::payload::RawPool<'_>>,
    dividends: &crate::json::Items<Json<'_>>,
    race_id: &str,
    polled_at: i64,
    prior: &PriorState,
    out: &mut Findings,
) -> Result<Option<Pools>, PayloadError> {
    let mut found: [Option<i64>; 6] = [None; 6];
    let source;
    let tote_present = expect_array("data.tote_pools", tote_pools.kind, out) && !tote_pools.items.is_empty();
    if tote_present {
        source = "tote_pools";
        for (i, row) in tote_pools.items.iter().enumerate() {
            if row.kind != Kind::Object {
                out.invalid(format!("data.tote_pools[{i}]: expected object, got {}", row.kind.name()));
                continue;
            }
            let Some(product) = row.product_type.as_str().and_then(|n| product_index(n)) else {
                continue;
            };
            let path = format!("data.tote_pools[{i}].total");
            let total = match row.total.as_f64() {
                Some(x) if (0.0..=MAX_POOL_DOLLARS).contains(&x) => x,
                Some(_) => return Err(PayloadError::schema(format!("{path}: number out of range"))),
                None if row.total.kind().is_missing() => 0.0,
                None => {
                    out.invalid(format!("{path}: expected number, got {}", row.total.kind().name()));
                    0.0
                }
            };
            let cents = numeric::round_half_up(total * 100.0).map_err(|e| PayloadError::schema(e.0))?;
            if let Some(previous) = found[product] {
                out.add(
                    "duplicate_pool",
                    "warning",
                    format!(
                        "{} appears more than once in tote_pools; the larger total is kept",
                        PRODUCTS[product]
                    ),
                    None,
                );
                found[product] = Some(previous.max(cents));
            } else {
                found[product] = Some(cents);
            }
        }
    } else if dividends.kind == Kind::Array && !dividends.items.is_empty() {
        source = "dividends";
        let mut best: [Option<f64>; 6] = [None; 6];
        for (i, d) in dividends.items.iter().enumerate() {
            let Some(product) = d.get("product_name").and_then(Json::as_str).and_then(product_index) else {
                continue;
            };
            let Some(size) = d.get("pool_size").and_then(Json::as_f64) else {
                continue;
            };
            if size > MAX_POOL_DOLLARS {
                return Err(PayloadError::schema(format!(
                    "data.dividends[{i}].pool_size: number out of range"
                )));
            }
            if size > 0.0 && best[product].map_or(true, |b| size > b) {
                best[product] = Some(size);
            }
        }
        for (slot, size) in found.iter_mut().zip(best) {
            if let Some(size) = size {
                *slot = Some(numeric::round_half_up(size * 100.0).map_err(|e| PayloadError::schema(e.0))?);
            }
        }
    } else {
        return Ok(None);
    }
    let extracted = found.iter().filter(|f| f.is_some()).count();
    if extracted == 0 {
        return Ok(None);
    }
    let t = found.map(|f| f.unwrap_or(0));
    let mut score: i64 = if source == "tote_pools" { 100 } else { 90 };
    if t[0] == 0 || t[1] == 0 {
        score -= 30;
    }
    let last_updated = match &prior.pools {
        Some(p) if p.totals() == t => p.last_updated,
        _ => polled_at,
    };
    Ok(Some(Pools {
        race_id: race_id.to_owned(),
        win_pool_total: t[0],
        place_pool_total: t[1],
        quinella_pool_total: t[2],
        trifecta_pool_total: t[3],
        exacta_pool_total: t[4],
        first4_pool_total: t[5],
        total_race_pool: t.iter().sum(),
        currency: "$".to_owned(),
        extracted_pools: i64::try_from(extracted).unwrap_or(6),
        data_quality_score: score.max(0),
        source: source.to_owned(),
        last_updated,
    }))
}

/// Per entrant: the latest poll of each bucket.
type BucketMap = FastMap<Arc<str>, Vec<BucketLatest>>;

fn bucket_map(buckets: &[BucketLatest]) -> BucketMap {
    let mut map = BucketMap::default();
    for b in buckets {
        let list = map.entry(Arc::clone(&b.entrant_id)).or_default();
        match list.iter_mut().find(|x| x.time_interval == b.time_interval) {
            Some(existing) if b.recency() >= existing.recency() => *existing = b.clone(),
            Some(_) => {}
            None => list.push(b.clone()),
        }
    }
    map
}

/// Effective buckets of one entrant (§7.1), highest bucket first.
fn effective(history: &[BucketLatest]) -> Vec<&BucketLatest> {
    let mut sorted: Vec<&BucketLatest> = history.iter().collect();
    sorted.sort_by_key(|b| std::cmp::Reverse(b.time_interval));
    let mut eff: Vec<&BucketLatest> = Vec::new();
    for b in sorted {
        if eff.last().map_or(true, |last| b.recency() > last.recency()) {
            eff.push(b);
        }
    }
    eff
}

/// Stores a new poll; false when it does not become the most recent effective poll (§7.3).
fn record_poll(history: &mut Vec<BucketLatest>, this: BucketLatest) -> bool {
    let key = this.recency();
    let b = this.time_interval;
    match history.iter_mut().find(|x| x.time_interval == b) {
        Some(existing) if key >= existing.recency() => *existing = this,
        Some(_) => return false,
        None => history.push(this),
    }
    let eff = effective(history);
    eff.last().is_some_and(|last| last.time_interval == b && last.recency() == key)
}

fn flatten_buckets(map: BucketMap) -> Vec<BucketLatest> {
    let mut all: Vec<BucketLatest> = map.into_values().flatten().collect();
    // (entrant, bucket) is unique, so an unstable sort is deterministic.
    all.sort_unstable_by(|a, b| a.entrant_id.cmp(&b.entrant_id).then(b.time_interval.cmp(&a.time_interval)));
    all
}

fn odds_changes<'a>(
    entrants: &[EntrantRecord<'a>],
    prior: &PriorState,
) -> (Vec<OddsChange<'a>>, Vec<LastOdds>) {
    // The last stored odds per (entrant, type), the last of duplicates winning: compared with
    // this poll's odds, then updated with its changes to become the new state.
    let mut stored: FastMap<(&str, &str), LastOdds> = FastMap::default();
    for o in &prior.odds {
        stored.insert((&o.entrant_id, &o.odds_type), o.clone());
    }
    let mut changes = Vec::new();
    for e in entrants.iter().filter(|e| !e.scratched()) {
        for (t, current) in ODDS_TYPES.iter().zip(e.odds) {
            let last = stored.get(&(e.entrant_id.as_ref(), *t)).map(|o| o.odds);
            let changed = match (last, current) {
                (None | Some(None), None) => false,
                (None | Some(None), Some(_)) | (Some(Some(_)), None) => true,
                (Some(Some(prev)), Some(cur)) => numeric::hundredths(prev).ok() != Some(cur),
            };
            if changed {
                changes.push(OddsChange {
                    entrant_id: e.entrant_id.clone(),
                    odds_type: t,
                    hundredths: current,
                });
            }
        }
    }
    let mut ids: FastMap<&str, Arc<str>> = FastMap::default();
    for c in &changes {
        let value = c.hundredths.map(to_odds);
        match stored.get_mut(&(c.entrant_id.as_ref(), c.odds_type)) {
            Some(o) => o.odds = value,
            None => {
                let id = ids.entry(c.entrant_id.as_ref()).or_insert_with(|| Arc::from(c.entrant_id.as_ref()));
                let entry =
                    LastOdds { entrant_id: Arc::clone(id), odds_type: Arc::from(c.odds_type), odds: value };
                stored.insert((c.entrant_id.as_ref(), c.odds_type), entry);
            }
        }
    }
    let mut dedup: Vec<LastOdds> = stored.into_values().collect();
    dedup.sort_unstable_by(|a, b| (&*a.entrant_id, &*a.odds_type).cmp(&(&*b.entrant_id, &*b.odds_type)));
    (changes, dedup)
}

/// Stored odds value of hundredths.
#[must_use]
#[allow(clippy::cast_precision_loss)] // hundredths are below 10^9
pub fn to_odds(h: i64) -> f64 {
    h as f64 / 100.0
}

fn read_results<'a>(
    results: crate::json::Items<Json<'a>>,
    dividends: crate::json::Items<Json<'a>>,
    entrants: &[EntrantRecord<'a>],
    status: &str,
    polled_at: i64,
    prior: &PriorState,
    out: &mut Findings,
) -> Result<Option<ResultsRecord<'a>>, PayloadError> {
    let results = object_items("data.results", results, out)?;
    let dividends = object_items("data.dividends", dividends, out)?;
    if results.is_empty() && dividends.is_empty() {
        return Ok(None);
    }
    let mut results_data = results;
    let sort_key = |j: &Json<'_>| {
        let k = |name: &str| j.get(name).and_then(Json::as_i64).map_or((1, 0), |v| (0, v));
        (k("position"), k("runner_number"))
    };
    results_data.sort_by_key(sort_key);

    let status_of = |d: &Json<'_>| d.get("status").and_then(Json::as_str).map(str::to_owned);
    let lowered: Vec<String> = dividends.iter().filter_map(status_of).map(|s| s.to_lowercase()).collect();
    let any = |needles: &[&str]| lowered.iter().any(|s| needles.iter().any(|n| s.contains(n)));
    let photo_finish = prior.photo_finish || any(&["photo"]);
    let stewards_inquiry = prior.stewards_inquiry || any(&["inquiry", "enquiry"]);
    let protest_lodged = prior.protest_lodged || prior.protest || any(&["protest"]);

    let product_of = |d: &Json<'_>| d.get("product_name").and_then(Json::as_str).map(str::to_owned);
    let is_final = |d: &Json<'_>| d.get("status").and_then(Json::as_str) == Some("Final");
    let final_products: Vec<Option<String>> =
        dividends.iter().filter(|d| is_final(d)).map(product_of).collect();
    let dividends_data: Vec<Json<'a>> =
        dividends.into_iter().filter(|d| !final_products.contains(&product_of(d)) || is_final(d)).collect();

    let mut fixed_odds_data: Vec<(String, FixedOdds<'a>)> = Vec::new();
    for e in entrants.iter().filter(|e| !e.scratched()) {
        let entry = FixedOdds {
            entrant_id: e.entrant_id.clone(),
            runner_name: e.name.clone(),
            fixed_win_odds: e.odds[0],
            fixed_place_odds: e.odds[1],
        };
        let key = e.runner_number.to_string();
        match fixed_odds_data.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = entry,
            None => fixed_odds_data.push((key, entry)),
        }
    }
    let result_status = if status == "final" {
        "final"
    } else if protest_lodged {
        "protest"
    } else {
        "interim"
    };
    let result_time = match (prior.result_status.as_deref(), prior.result_time) {
        (Some(s), Some(t)) if s == result_status => t,
        _ => polled_at,
    };
    Ok(Some(ResultsRecord {
        results_available: !results_data.is_empty(),
        results_data,
        dividends_data,
        fixed_odds_data,
        result_status,
        photo_finish,
        stewards_inquiry,
        protest_lodged,
        result_time,
    }))
}

fn object_items<'a>(
    path: &str,
    items: crate::json::Items<Json<'a>>,
    out: &mut Findings,
) -> Result<Vec<Json<'a>>, PayloadError> {
    if !expect_array(path, items.kind, out) {
        return Ok(Vec::new());
    }
    let mut kept = Vec::with_capacity(items.items.len());
    for (i, item) in items.items.into_iter().enumerate() {
        if item.kind() == Kind::Object {
            if !item.is_finite() {
                return Err(PayloadError::schema(format!("{path}[{i}]: number out of range")));
            }
            kept.push(item);
        } else {
            out.invalid(format!("{path}[{i}]: expected object, got {}", item.kind().name()));
        }
    }
    Ok(kept)
}

#[allow(clippy::cast_precision_loss)] // counts are small
fn quality_checks(
    race: &RaceRecord<'_>,
    entrants: &[EntrantRecord<'_>],
    tracker: Option<&Tracker<'_>>,
    pools: Option<&Pools>,
    prior: &PriorState,
    out: &mut Findings,
) {
    let open = race.status == "open";
    if let Some(t) = tracker {
        let s = t.hold_sum();
        if s != 0.0 && (s - 100.0).abs() > 5.0 {
            out.add(
                "hold_sum",
                "warning",
                "hold percentages over all money-tracker ids do not sum to 100 ± 5".to_owned(),
                Some(s),
            );
        }
        if t.unknown_ids > 0 {
            out.add(
                "unknown_tracker_ids",
                "info",
                format!("{} money-tracker ids are not runners", t.unknown_ids),
                Some(t.unknown_ids as f64),
            );
        }
        if t.invalid_rows > 0 {
            out.add(
                "invalid_tracker_rows",
                "warning",
                format!(
                    "{} money-tracker rows have a missing entrant_id or a missing, non-numeric, negative or out-of-range percentage",
                    t.invalid_rows
                ),
                Some(t.invalid_rows as f64),
            );
        }
    }
    let (win, place) = pools.map_or((0, 0), |p| (p.win_pool_total, p.place_pool_total));
    if open {
        if win == 0 {
            out.add("win_place_pools", "warning", "win pool total is absent or 0".to_owned(), None);
        }
        if place == 0 {
            out.add("win_place_pools", "warning", "place pool total is absent or 0".to_owned(), None);
        }
    }
    if pools.is_some() && place > 3 * win {
        out.add("pool_ratio", "info", "place pool total exceeds 3 × the win pool total".to_owned(), None);
    }
    if let (true, Some(cur), Some(prev)) = (open, pools, prior.pools.as_ref()) {
        for ((name, c), p) in PRODUCTS.iter().zip(cur.totals()).zip(prev.totals()) {
            if c < p && (p - c) * 100 > p {
                out.add(
                    "pools_shrink",
                    "warning",
                    format!("{name} pool total fell from {p} to {c} cents"),
                    None,
                );
            }
        }
    }
    let n = entrants.len();
    if !(2..=40).contains(&n) {
        out.add("field_size", "warning", format!("field has {n} runners"), Some(n as f64));
    }
    if let Some(prev) = prior.status.as_deref() {
        if is_terminal(prev) && !is_terminal(race.status) {
            out.add(
                "status_regression",
                "warning",
                format!("status went from {prev} to {}", race.status),
                None,
            );
        }
    }
    if let Some(old) = prior.start_time {
        if old != race.start_time {
            out.add(
                "start_time_change",
                "info",
                format!("advertised start changed from {old} to {} (epoch ms)", race.start_time),
                None,
            );
        }
    }
}

//! `event_summary`: a cheap digest of an event payload for the fetcher's log line and its
//! in-band error check (nztab-api.md §9.3, §9.7). Reads only what it reports.

use std::borrow::Cow;

use crate::error::PayloadError;
use crate::fields::{normalise_status, req_int, req_object, req_text, I32_MAX};
use crate::hash::FastSet;
use crate::json::{lenient_struct, Items, Kind, Scalar};
use crate::numeric::MAX_EPOCH_S;
use crate::payload::{decode, require_object_root, RawHeader, RawTracker};

lenient_struct! {
    /// Envelope.
    struct SumRoot<'de> {
        header: RawHeader<'de> => "header",
        data: SumData<'de> => "data",
    }
}

lenient_struct! {
    /// `data`.
    struct SumData<'de> {
        race: SumRace<'de> => "race",
        runners: Items<SumRunner<'de>> => "runners",
        money_tracker: RawTracker<'de> => "money_tracker",
        tote_pools: Items<SumPool<'de>> => "tote_pools",
        results: Items<Scalar<'de>> => "results",
        dividends: Items<Scalar<'de>> => "dividends",
        error: Scalar<'de> => "error",
    }
}

lenient_struct! {
    /// `data.race`.
    struct SumRace<'de> {
        event_id: Scalar<'de> => "event_id",
        meeting_id: Scalar<'de> => "meeting_id",
        race_number: Scalar<'de> => "race_number",
        status: Scalar<'de> => "status",
        advertised_start: Scalar<'de> => "advertised_start",
    }
}

lenient_struct! {
    /// A runner.
    struct SumRunner<'de> {
        entrant_id: Scalar<'de> => "entrant_id",
        is_scratched: Scalar<'de> => "is_scratched",
        is_late_scratched: Scalar<'de> => "is_late_scratched",
    }
}

lenient_struct! {
    /// A tote pool row.
    struct SumPool<'de> {
        product_type: Scalar<'de> => "product_type",
    }
}

/// The digest (mirrors `EventSummary` in services/transformer/records.py).
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct EventSummary<'a> {
    pub event_id: Cow<'a, str>,
    pub meeting_id: Option<Cow<'a, str>>,
    pub race_number: Option<i64>,
    pub status_raw: Option<Cow<'a, str>>,
    pub status: &'static str,
    pub advertised_start: Option<i64>,
    pub error: Cow<'a, str>,
    pub runner_count: usize,
    pub scratched_count: usize,
    pub tracker_rows: usize,
    pub tracker_unknown_ids: usize,
    pub pool_products: Vec<Cow<'a, str>>,
    pub results_count: usize,
    pub dividends_count: usize,
    pub generated_time: Option<Cow<'a, str>>,
}

fn text(v: Scalar<'_>) -> Option<Cow<'_, str>> {
    match v {
        Scalar::Str(s) => Some(s),
        _ => None,
    }
}

/// Summarises an event payload.
///
/// # Errors
/// Decode errors as `transform`; schema errors when `data`, `data.race`, its `event_id` or
/// `advertised_start` is missing or invalid, unless `data.error` is a non-empty string.
pub fn event_summary(payload: &[u8]) -> Result<EventSummary<'_>, PayloadError> {
    let root: SumRoot<'_> = decode(payload)?;
    require_object_root(root.kind)?;
    let data = root.data;
    let error = match &data.error {
        Scalar::Str(s) => s.clone(),
        _ => Cow::Borrowed(""),
    };
    let lenient = !error.is_empty();
    if !lenient {
        req_object("data", data.kind)?;
        req_object("data.race", data.race.kind)?;
    }
    let race = data.race;
    let (event_id, advertised_start) = if lenient {
        (
            text(race.event_id).unwrap_or(Cow::Borrowed("")),
            match race.advertised_start {
                Scalar::Int(s) if (0..=MAX_EPOCH_S).contains(&s) => Some(s),
                _ => None,
            },
        )
    } else {
        (
            req_text("data.race.event_id", race.event_id)?,
            Some(req_int("data.race.advertised_start", &race.advertised_start, 0, MAX_EPOCH_S)?),
        )
    };
    let status_raw = text(race.status);
    let runners = if data.runners.kind == Kind::Array { data.runners.items } else { Vec::new() };
    let runner_ids: FastSet<&str> =
        runners.iter().filter_map(|r| r.entrant_id.as_str().map(AsRef::as_ref)).collect();
    let scratched_count = runners
        .iter()
        .filter(|r| {
            matches!(r.is_scratched, Scalar::Bool(true)) || matches!(r.is_late_scratched, Scalar::Bool(true))
        })
        .count();
    let rows = if data.money_tracker.entrants.kind == Kind::Array {
        &data.money_tracker.entrants.items[..]
    } else {
        &[]
    };
    let tracker_ids: FastSet<&str> =
        rows.iter().filter_map(|r| r.entrant_id.as_str().map(AsRef::as_ref)).collect();
    let count = |items: &Items<Scalar<'_>>| {
        if items.kind == Kind::Array {
            items.items.len()
        } else {
            0
        }
    };
    Ok(EventSummary {
        event_id,
        meeting_id: text(race.meeting_id),
        race_number: match race.race_number {
            Scalar::Int(n) if (0..=I32_MAX).contains(&n) => Some(n),
            _ => None,
        },
        status: normalise_status(status_raw.as_deref()),
        status_raw,
        advertised_start,
        runner_count: runners.len(),
        scratched_count,
        tracker_rows: rows.len(),
        tracker_unknown_ids: tracker_ids.iter().filter(|id| !runner_ids.contains(*id)).count(),
        pool_products: if data.tote_pools.kind == Kind::Array {
            data.tote_pools.items.into_iter().filter_map(|p| text(p.product_type)).collect()
        } else {
            Vec::new()
        },
        results_count: count(&data.results),
        dividends_count: count(&data.dividends),
        generated_time: text(root.header.generated_time),
        error,
    })
}

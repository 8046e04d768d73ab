//! Thin PyO3 binding of `raceday_core`: conversion at the edges, no math here.
//!
//! `transform` and `event_summary` convert their Python arguments first, release the GIL
//! for parsing and computing, then build the result dicts (keys as in
//! services/transformer/records.py). Payload errors raise the classes of
//! raceday_core/errors.py; other bad arguments raise `ValueError`.

use std::sync::Arc;

mod archive;
mod encoded;
mod write;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyDict, PyInt, PyList, PyString, PyTuple, PyType};
use pyo3::{intern, IntoPyObjectExt};
use raceday_core::hash::FastMap;
use raceday_core::inflate::{inflate, InflateError};
use raceday_core::json::Json;
use raceday_core::moves::{self, Cell, MoveKind, RunnerColumns};
use raceday_core::numeric;
use raceday_core::transform::to_odds;
use raceday_core::update::{EntrantRecord, ODDS_TYPES};
use raceday_core::vocab;
use raceday_core::{BucketLatest, LastOdds, PayloadErrorKind, Pools, PriorState, TransformError};

static DECODE_ERROR: GILOnceCell<Py<PyType>> = GILOnceCell::new();
static SCHEMA_ERROR: GILOnceCell<Py<PyType>> = GILOnceCell::new();

fn error_class<'py>(py: Python<'py>, kind: PayloadErrorKind) -> PyResult<&'py Bound<'py, PyType>> {
    let (cell, name) = match kind {
        PayloadErrorKind::Decode => (&DECODE_ERROR, "PayloadDecodeError"),
        PayloadErrorKind::Schema => (&SCHEMA_ERROR, "PayloadSchemaError"),
    };
    let class = cell.get_or_try_init(py, || -> PyResult<Py<PyType>> {
        let errors = py.import("raceday_core.errors")?;
        Ok(errors.getattr(name)?.downcast_into::<PyType>()?.unbind())
    })?;
    Ok(class.bind(py))
}

pub(crate) fn payload_err(py: Python<'_>, e: raceday_core::PayloadError) -> PyErr {
    match error_class(py, e.kind) {
        Ok(class) => PyErr::from_type(class.clone(), e.message),
        Err(import_failure) => import_failure,
    }
}

fn range_err(e: numeric::RangeError) -> PyErr {
    PyValueError::new_err(e.0)
}

/// A fresh dict with `keys` (all None), copied from a per-record template: copying a dense
/// dict is one allocation, while inserting ~30 keys one by one resizes the table twice.
macro_rules! record {
    ($py:expr, [$($key:literal),* $(,)?]) => {{
        static TEMPLATE: GILOnceCell<Py<PyDict>> = GILOnceCell::new();
        let template = TEMPLATE.get_or_try_init($py, || -> PyResult<Py<PyDict>> {
            let d = PyDict::new($py);
            $(d.set_item(intern!($py, $key), $py.None())?;)*
            Ok(d.unbind())
        })?;
        template.bind($py).copy()?
    }};
}

macro_rules! set {
    ($d:expr, $key:literal, $value:expr) => {
        $d.set_item(intern!($d.py(), $key), $value)?
    };
}

/// Version of the Rust money-flow core.
#[pyfunction]
fn version() -> &'static str {
    raceday_core::version()
}

/// R(x) = floor(x + 0.5).
#[pyfunction]
fn round_half_up(x: f64) -> PyResult<i64> {
    numeric::round_half_up(x).map_err(range_err)
}

/// Odds in hundredths.
#[pyfunction]
fn hundredths(x: f64) -> PyResult<i64> {
    numeric::hundredths(x).map_err(range_err)
}

/// Whole minutes to the start.
#[pyfunction]
fn time_to_start(advertised_start_s: i64, polled_at_ms: i64) -> PyResult<i64> {
    numeric::time_to_start(advertised_start_s, polled_at_ms).map_err(range_err)
}

/// The bucket of a time to start.
#[pyfunction]
fn bucket(time_to_start: i64) -> i64 {
    numeric::bucket(time_to_start)
}

/// The interval label of a time to start.
#[pyfunction]
fn interval_type(time_to_start: i64) -> &'static str {
    numeric::interval_type(time_to_start)
}

/// Amounts and unrounded percentages.
#[pyfunction]
fn pool_amounts(py: Python<'_>, hold: f64, win_cents: i64, place_cents: i64) -> PyResult<Bound<'_, PyTuple>> {
    let a = numeric::pool_amounts(hold, win_cents, place_cents).map_err(range_err)?;
    (a.win, a.place, a.total, a.win_pct, a.place_pct).into_pyobject(py)
}

/// One poll of one race.
#[pyfunction]
fn transform<'py>(
    py: Python<'py>,
    payload: &[u8],
    polled_at_ms: i64,
    prior_state: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let (state, dicts) = state_from_py(prior_state)?;
    let result = py.allow_threads(|| raceday_core::transform(payload, polled_at_ms, &state));
    match result {
        Ok(update) => update_to_py(py, &update, &state, &dicts),
        Err(TransformError::Payload(e)) => Err(payload_err(py, e)),
        Err(TransformError::Argument(m)) => Err(PyValueError::new_err(m)),
    }
}

/// A digest of an event payload, as received (`encoding`: "" or "identity", or "gzip").
#[pyfunction]
#[pyo3(signature = (payload, encoding = ""))]
fn event_summary<'py>(py: Python<'py>, payload: &[u8], encoding: &str) -> PyResult<Bound<'py, PyDict>> {
    let body = py.allow_threads(|| inflate(payload, encoding)).map_err(|e| match e {
        InflateError::Payload(e) => payload_err(py, e),
        InflateError::Encoding(message) => PyValueError::new_err(message),
    })?;
    let s = py.allow_threads(|| raceday_core::event_summary(&body)).map_err(|e| payload_err(py, e))?;
    let d = record!(
        py,
        [
            "event_id",
            "meeting_id",
            "race_number",
            "status_raw",
            "status",
            "advertised_start",
            "error",
            "runner_count",
            "scratched_count",
            "tracker_rows",
            "tracker_unknown_ids",
            "pool_products",
            "results_count",
            "dividends_count",
            "generated_time"
        ]
    );
    set!(d, "event_id", s.event_id);
    set!(d, "meeting_id", s.meeting_id);
    set!(d, "race_number", s.race_number);
    set!(d, "status_raw", s.status_raw);
    set!(d, "status", s.status);
    set!(d, "advertised_start", s.advertised_start);
    set!(d, "error", s.error);
    set!(d, "runner_count", s.runner_count);
    set!(d, "scratched_count", s.scratched_count);
    set!(d, "tracker_rows", s.tracker_rows);
    set!(d, "tracker_unknown_ids", s.tracker_unknown_ids);
    set!(d, "pool_products", PyList::new(py, s.pool_products)?);
    set!(d, "results_count", s.results_count);
    set!(d, "dividends_count", s.dividends_count);
    set!(d, "generated_time", s.generated_time);
    Ok(d)
}

// ---- Python -> prior state -------------------------------------------------------------

fn bad_state(path: &str, e: &PyErr) -> PyErr {
    PyValueError::new_err(format!("prior_state.{path}: {e}"))
}

/// Reads `key` (interned) from a prior-state dict; `path` is only formatted for an error.
macro_rules! field {
    ($d:expr, $key:literal, $path:expr) => {{
        let d = &$d;
        match d.get_item(intern!(d.py(), $key))? {
            Some(value) => value.extract().map_err(|e| bad_state(&format!("{}{}", $path, $key), &e))?,
            None => return Err(PyValueError::new_err(format!("prior_state.{}{}: missing", $path, $key))),
        }
    }};
}

fn as_dict<'py>(v: &Bound<'py, PyAny>, path: impl FnOnce() -> String) -> PyResult<Bound<'py, PyDict>> {
    v.downcast::<PyDict>()
        .cloned()
        .map_err(|_| PyValueError::new_err(format!("prior_state{}: expected a dict", path())))
}

/// The prior state's bucket and odds dicts, index-aligned with `PriorState::buckets`/`odds`:
/// entries the transform leaves unchanged are passed on into the new state (the same dict
/// objects; states are values to hand on, not to mutate) instead of being rebuilt.
struct PriorDicts<'py> {
    buckets: Vec<Bound<'py, PyDict>>,
    odds: Vec<Bound<'py, PyDict>>,
}

/// One `Arc<str>` per distinct id or type of a prior state (they repeat in every entry).
#[derive(Default)]
struct Interned(FastMap<String, Arc<str>>);

impl Interned {
    fn get(&mut self, value: &Bound<'_, PyAny>, path: impl FnOnce() -> String) -> PyResult<Arc<str>> {
        let text = value.downcast::<PyString>().map_err(|e| bad_state(&path(), &e.into()))?;
        let text = text.to_str()?;
        if let Some(found) = self.0.get(text) {
            return Ok(Arc::clone(found));
        }
        let arc: Arc<str> = Arc::from(text);
        self.0.insert(text.to_owned(), Arc::clone(&arc));
        Ok(arc)
    }
}

fn state_from_py<'py>(obj: &Bound<'py, PyAny>) -> PyResult<(PriorState, PriorDicts<'py>)> {
    let d = as_dict(obj, String::new)?;
    let mut interned = Interned::default();
    let buckets_list: Vec<Bound<'_, PyAny>> = field!(d, "buckets", "");
    let mut buckets = Vec::with_capacity(buckets_list.len());
    let mut bucket_dicts = Vec::with_capacity(buckets_list.len());
    for (i, b) in buckets_list.iter().enumerate() {
        let b = as_dict(b, || format!(".buckets[{i}]"))?;
        bucket_dicts.push(b.clone());
        buckets.push(BucketLatest {
            entrant_id: {
                let v: Bound<'_, PyAny> = field!(b, "entrant_id", format!("buckets[{i}]."));
                interned.get(&v, || format!("buckets[{i}].entrant_id"))?
            },
            time_interval: field!(b, "time_interval", format!("buckets[{i}].")),
            polled_at: field!(b, "polled_at", format!("buckets[{i}].")),
            row_id: field!(b, "row_id", format!("buckets[{i}].")),
            win_pool_amount: field!(b, "win_pool_amount", format!("buckets[{i}].")),
            place_pool_amount: field!(b, "place_pool_amount", format!("buckets[{i}].")),
            incremental_win_amount: field!(b, "incremental_win_amount", format!("buckets[{i}].")),
            incremental_place_amount: field!(b, "incremental_place_amount", format!("buckets[{i}].")),
            fixed_win_odds: field!(b, "fixed_win_odds", format!("buckets[{i}].")),
            pool_win_odds: field!(b, "pool_win_odds", format!("buckets[{i}].")),
        });
    }
    let odds_list: Vec<Bound<'_, PyAny>> = field!(d, "odds", "");
    let mut odds = Vec::with_capacity(odds_list.len());
    let mut odds_dicts = Vec::with_capacity(odds_list.len());
    for (i, o) in odds_list.iter().enumerate() {
        let o = as_dict(o, || format!(".odds[{i}]"))?;
        odds_dicts.push(o.clone());
        odds.push(LastOdds {
            entrant_id: {
                let v: Bound<'_, PyAny> = field!(o, "entrant_id", format!("odds[{i}]."));
                interned.get(&v, || format!("odds[{i}].entrant_id"))?
            },
            odds_type: {
                let v: Bound<'_, PyAny> = field!(o, "type", format!("odds[{i}]."));
                interned.get(&v, || format!("odds[{i}].type"))?
            },
            odds: field!(o, "odds", format!("odds[{i}].")),
        });
    }
    let pools_obj: Option<Bound<'_, PyAny>> = field!(d, "pools", "");
    let pools = match pools_obj {
        None => None,
        Some(p) => {
            let p = as_dict(&p, || ".pools".to_owned())?;
            Some(Pools {
                race_id: field!(p, "race_id", "pools."),
                win_pool_total: field!(p, "win_pool_total", "pools."),
                place_pool_total: field!(p, "place_pool_total", "pools."),
                quinella_pool_total: field!(p, "quinella_pool_total", "pools."),
                trifecta_pool_total: field!(p, "trifecta_pool_total", "pools."),
                exacta_pool_total: field!(p, "exacta_pool_total", "pools."),
                first4_pool_total: field!(p, "first4_pool_total", "pools."),
                total_race_pool: field!(p, "total_race_pool", "pools."),
                currency: field!(p, "currency", "pools."),
                extracted_pools: field!(p, "extracted_pools", "pools."),
                data_quality_score: field!(p, "data_quality_score", "pools."),
                source: field!(p, "source", "pools."),
                last_updated: field!(p, "last_updated", "pools."),
            })
        }
    };
    let state = PriorState {
        race_id: field!(d, "race_id", ""),
        buckets,
        odds,
        status: field!(d, "status", ""),
        start_time: field!(d, "start_time", ""),
        protest: field!(d, "protest", ""),
        pools,
        photo_finish: field!(d, "photo_finish", ""),
        stewards_inquiry: field!(d, "stewards_inquiry", ""),
        protest_lodged: field!(d, "protest_lodged", ""),
        result_status: field!(d, "result_status", ""),
        result_time: field!(d, "result_time", ""),
    };
    Ok((state, PriorDicts { buckets: bucket_dicts, odds: odds_dicts }))
}

// ---- update -> Python ------------------------------------------------------------------

/// Python strings for the ids that recur across the update (race id, entrant ids), so each
/// is created once per call.
struct Ids<'py> {
    py: Python<'py>,
    cache: FastMap<String, Bound<'py, PyString>>,
    prices: FastMap<i64, Bound<'py, PyAny>>,
}

impl<'py> Ids<'py> {
    fn new(py: Python<'py>) -> Self {
        Self { py, cache: FastMap::default(), prices: FastMap::default() }
    }

    /// An odds value (hundredths / 100) or None; each distinct price is one Python float.
    fn odds(&mut self, h: Option<i64>) -> PyResult<Bound<'py, PyAny>> {
        let Some(h) = h else { return Ok(self.py.None().into_bound(self.py)) };
        if let Some(v) = self.prices.get(&h) {
            return Ok(v.clone());
        }
        let v = to_odds(h).into_bound_py_any(self.py)?;
        self.prices.insert(h, v.clone());
        Ok(v)
    }

    fn get(&mut self, s: &str) -> Bound<'py, PyString> {
        if let Some(v) = self.cache.get(s) {
            return v.clone();
        }
        let v = PyString::new(self.py, s);
        self.cache.insert(s.to_owned(), v.clone());
        v
    }
}

fn json_to_py<'py>(py: Python<'py>, ids: &mut Ids<'py>, j: &Json<'_>) -> PyResult<Bound<'py, PyAny>> {
    Ok(match j {
        Json::Missing | Json::Null => py.None().into_bound(py),
        Json::Bool(b) => b.into_bound_py_any(py)?,
        Json::Int(i) => i.into_bound_py_any(py)?,
        Json::BigInt(text) => py.get_type::<PyInt>().call1((*text,))?,
        Json::Float(f) => f.into_bound_py_any(py)?,
        Json::Str(s) => s.as_ref().into_bound_py_any(py)?,
        Json::Array(items) => {
            let converted =
                items.iter().map(|item| json_to_py(py, ids, item)).collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, converted)?.into_any()
        }
        Json::Object(members) => {
            let dict = PyDict::new(py);
            for (k, v) in members {
                // Keys repeat across items (every result has "runner_number"): one string each.
                dict.set_item(ids.get(k), json_to_py(py, ids, v)?)?;
            }
            dict.into_any()
        }
    })
}

fn pools_to_py<'py>(py: Python<'py>, p: &Pools) -> PyResult<Bound<'py, PyDict>> {
    let d = record!(
        py,
        [
            "race_id",
            "win_pool_total",
            "place_pool_total",
            "quinella_pool_total",
            "trifecta_pool_total",
            "exacta_pool_total",
            "first4_pool_total",
            "total_race_pool",
            "currency",
            "extracted_pools",
            "data_quality_score",
            "source",
            "last_updated"
        ]
    );
    set!(d, "race_id", &p.race_id);
    set!(d, "win_pool_total", p.win_pool_total);
    set!(d, "place_pool_total", p.place_pool_total);
    set!(d, "quinella_pool_total", p.quinella_pool_total);
    set!(d, "trifecta_pool_total", p.trifecta_pool_total);
    set!(d, "exacta_pool_total", p.exacta_pool_total);
    set!(d, "first4_pool_total", p.first4_pool_total);
    set!(d, "total_race_pool", p.total_race_pool);
    set!(d, "currency", &p.currency);
    set!(d, "extracted_pools", p.extracted_pools);
    set!(d, "data_quality_score", p.data_quality_score);
    set!(d, "source", &p.source);
    set!(d, "last_updated", p.last_updated);
    Ok(d)
}

fn state_to_py<'py>(
    py: Python<'py>,
    ids: &mut Ids<'py>,
    s: &PriorState,
    prior: &PriorState,
    dicts: &PriorDicts<'py>,
) -> PyResult<Bound<'py, PyDict>> {
    let mut prior_buckets: FastMap<(&str, i64), usize> = FastMap::default();
    for (i, b) in prior.buckets.iter().enumerate() {
        prior_buckets.insert((&*b.entrant_id, b.time_interval), i);
    }
    let buckets = PyList::empty(py);
    for b in &s.buckets {
        if let Some(&i) = prior_buckets.get(&(&*b.entrant_id, b.time_interval)) {
            let source = &dicts.buckets[i];
            if prior.buckets[i] == *b && source.len() == 10 {
                buckets.append(source)?;
                continue;
            }
        }
        let d = record!(
            py,
            [
                "entrant_id",
                "time_interval",
                "polled_at",
                "row_id",
                "win_pool_amount",
                "place_pool_amount",
                "incremental_win_amount",
                "incremental_place_amount",
                "fixed_win_odds",
                "pool_win_odds"
            ]
        );
        set!(d, "entrant_id", ids.get(&b.entrant_id));
        set!(d, "time_interval", b.time_interval);
        set!(d, "polled_at", b.polled_at);
        set!(d, "row_id", b.row_id);
        set!(d, "win_pool_amount", b.win_pool_amount);
        set!(d, "place_pool_amount", b.place_pool_amount);
        set!(d, "incremental_win_amount", b.incremental_win_amount);
        set!(d, "incremental_place_amount", b.incremental_place_amount);
        set!(d, "fixed_win_odds", b.fixed_win_odds);
        set!(d, "pool_win_odds", b.pool_win_odds);
        buckets.append(d)?;
    }
    let mut prior_odds: FastMap<(&str, &str), usize> = FastMap::default();
    for (i, o) in prior.odds.iter().enumerate() {
        prior_odds.insert((&*o.entrant_id, &*o.odds_type), i);
    }
    let odds = PyList::empty(py);
    for o in &s.odds {
        if let Some(&i) = prior_odds.get(&(&*o.entrant_id, &*o.odds_type)) {
            let source = &dicts.odds[i];
            if prior.odds[i] == *o && source.len() == 3 {
                odds.append(source)?;
                continue;
            }
        }
        let d = record!(py, ["entrant_id", "type", "odds"]);
        set!(d, "entrant_id", ids.get(&o.entrant_id));
        set!(d, "type", ids.get(&o.odds_type));
        set!(d, "odds", o.odds);
        odds.append(d)?;
    }
    let d = record!(
        py,
        [
            "race_id",
            "buckets",
            "odds",
            "status",
            "start_time",
            "protest",
            "pools",
            "photo_finish",
            "stewards_inquiry",
            "protest_lodged",
            "result_status",
            "result_time"
        ]
    );
    set!(d, "race_id", ids.get(&s.race_id));
    set!(d, "buckets", buckets);
    set!(d, "odds", odds);
    set!(d, "status", &s.status);
    set!(d, "start_time", s.start_time);
    set!(d, "protest", s.protest);
    set!(d, "pools", s.pools.as_ref().map(|p| pools_to_py(py, p)).transpose()?);
    set!(d, "photo_finish", s.photo_finish);
    set!(d, "stewards_inquiry", s.stewards_inquiry);
    set!(d, "protest_lodged", s.protest_lodged);
    set!(d, "result_status", &s.result_status);
    set!(d, "result_time", s.result_time);
    Ok(d)
}

fn entrant_to_py<'py>(
    py: Python<'py>,
    ids: &mut Ids<'py>,
    race_id: &Bound<'py, PyString>,
    e: &EntrantRecord<'_>,
    polled_at: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = record!(
        py,
        [
            "entrant_id",
            "race_id",
            "runner_number",
            "name",
            "barrier",
            "barrier_position",
            "jockey",
            "trainer_name",
            "silk_colours",
            "silk_url_64x64",
            "silk_url_128x128",
            "is_scratched",
            "is_late_scratched",
            "scratch_time",
            "favourite",
            "mover",
            "runner_change",
            "fixed_win_odds",
            "fixed_place_odds",
            "pool_win_odds",
            "pool_place_odds",
            "has_money_flow",
            "hold_percentage",
            "bet_percentage",
            "win_pool_percentage",
            "place_pool_percentage",
            "win_pool_amount",
            "place_pool_amount",
            "money_flow_at"
        ]
    );
    set!(d, "entrant_id", ids.get(&e.entrant_id));
    set!(d, "race_id", race_id);
    set!(d, "runner_number", e.runner_number);
    set!(d, "name", e.name.as_ref());
    set!(d, "barrier", e.barrier);
    set!(d, "barrier_position", e.barrier_position.as_deref());
    set!(d, "jockey", e.jockey.as_deref());
    set!(d, "trainer_name", e.trainer_name.as_deref());
    set!(d, "silk_colours", e.silk_colours.as_deref());
    set!(d, "silk_url_64x64", e.silk_url_64x64.as_deref());
    set!(d, "silk_url_128x128", e.silk_url_128x128.as_deref());
    set!(d, "is_scratched", e.is_scratched);
    set!(d, "is_late_scratched", e.is_late_scratched);
    set!(d, "scratch_time", e.scratch_time);
    set!(d, "favourite", e.favourite);
    set!(d, "mover", e.mover);
    set!(d, "runner_change", json_to_py(py, ids, &e.runner_change)?);
    set!(d, "fixed_win_odds", ids.odds(e.odds[0])?);
    set!(d, "fixed_place_odds", ids.odds(e.odds[1])?);
    set!(d, "pool_win_odds", ids.odds(e.odds[2])?);
    set!(d, "pool_place_odds", ids.odds(e.odds[3])?);
    let mf = e.money_flow.as_ref();
    set!(d, "has_money_flow", mf.is_some());
    set!(d, "hold_percentage", mf.map(|m| m.hold_percentage));
    set!(d, "bet_percentage", mf.map(|m| m.bet_percentage));
    set!(d, "win_pool_percentage", mf.and_then(|m| m.win_pool_percentage));
    set!(d, "place_pool_percentage", mf.and_then(|m| m.place_pool_percentage));
    set!(d, "win_pool_amount", mf.map(|m| m.win_pool_amount));
    set!(d, "place_pool_amount", mf.map(|m| m.place_pool_amount));
    set!(d, "money_flow_at", mf.map(|_| polled_at));
    Ok(d)
}

fn update_to_py<'py>(
    py: Python<'py>,
    u: &raceday_core::RaceUpdate<'_>,
    prior: &PriorState,
    dicts: &PriorDicts<'py>,
) -> PyResult<Bound<'py, PyDict>> {
    let mut ids = Ids::new(py);
    let race_id = &ids.get(&u.race_id);
    // One int object for the poll time, shared by every row stamped with it.
    let polled_at = &u.polled_at.into_bound_py_any(py)?;
    let r = &u.race;
    let race = record!(
        py,
        [
            "race_id",
            "meeting_id",
            "race_number",
            "name",
            "status",
            "status_raw",
            "start_time",
            "actual_start",
            "race_date_nz",
            "start_time_nz",
            "tote_start_time",
            "type",
            "country",
            "state",
            "distance",
            "track_condition",
            "track_surface",
            "track_direction",
            "weather",
            "rail_position",
            "race_class",
            "entrant_count",
            "field_size",
            "positions_paid",
            "total_prize_money",
            "silk_url",
            "silk_base_url",
            "video_channels"
        ]
    );
    set!(race, "race_id", race_id);
    set!(race, "meeting_id", r.meeting_id.as_ref());
    set!(race, "race_number", r.race_number);
    set!(race, "name", r.name.as_ref());
    set!(race, "status", r.status);
    set!(race, "status_raw", r.status_raw.as_deref());
    set!(race, "start_time", r.start_time);
    set!(race, "actual_start", r.actual_start);
    set!(race, "race_date_nz", r.race_date_nz.as_deref());
    set!(race, "start_time_nz", r.start_time_nz.as_deref());
    set!(race, "tote_start_time", r.tote_start_time.as_deref());
    set!(race, "type", r.race_type.as_deref());
    set!(race, "country", r.country.as_deref());
    set!(race, "state", r.state.as_deref());
    set!(race, "distance", r.distance);
    set!(race, "track_condition", r.track_condition.as_deref());
    set!(race, "track_surface", r.track_surface.as_deref());
    set!(race, "track_direction", r.track_direction.as_deref());
    set!(race, "weather", r.weather.as_deref());
    set!(race, "rail_position", r.rail_position.as_deref());
    set!(race, "race_class", r.race_class.as_deref());
    set!(race, "entrant_count", r.entrant_count);
    set!(race, "field_size", r.field_size);
    set!(race, "positions_paid", r.positions_paid);
    set!(race, "total_prize_money", r.total_prize_money);
    set!(race, "silk_url", r.silk_url.as_deref());
    set!(race, "silk_base_url", r.silk_base_url.as_deref());
    set!(race, "video_channels", PyList::new(py, r.video_channels.iter().map(AsRef::<str>::as_ref))?);

    let m = &u.meeting;
    let meeting = record!(
        py,
        [
            "meeting_id",
            "meeting_name",
            "date",
            "country",
            "state",
            "category",
            "category_name",
            "track_condition",
            "weather"
        ]
    );
    set!(meeting, "meeting_id", m.meeting_id.as_ref());
    set!(meeting, "meeting_name", m.meeting_name.as_ref());
    set!(meeting, "date", m.date.as_deref());
    set!(meeting, "country", m.country.as_ref());
    set!(meeting, "state", m.state.as_deref());
    set!(meeting, "category", m.category.as_ref());
    set!(meeting, "category_name", m.category_name);
    set!(meeting, "track_condition", m.track_condition.as_deref());
    set!(meeting, "weather", m.weather.as_deref());

    let entrants = PyList::empty(py);
    for e in &u.entrants {
        entrants.append(entrant_to_py(py, &mut ids, race_id, e, polled_at)?)?;
    }

    let money_flow = PyList::empty(py);
    for row in &u.money_flow {
        let d = record!(
            py,
            [
                "race_id",
                "entrant_id",
                "event_timestamp",
                "source_generated_at",
                "advertised_start",
                "time_to_start",
                "time_interval",
                "interval_type",
                "hold_percentage",
                "bet_percentage",
                "win_pool_total",
                "place_pool_total",
                "win_pool_amount",
                "place_pool_amount",
                "total_pool_amount",
                "win_pool_percentage",
                "place_pool_percentage",
                "incremental_win_amount",
                "incremental_place_amount",
                "is_baseline",
                "fixed_win_odds",
                "fixed_place_odds",
                "pool_win_odds",
                "pool_place_odds"
            ]
        );
        set!(d, "race_id", race_id);
        set!(d, "entrant_id", ids.get(&row.entrant_id));
        set!(d, "event_timestamp", polled_at);
        set!(d, "source_generated_at", u.source_generated_at);
        set!(d, "advertised_start", row.advertised_start);
        set!(d, "time_to_start", row.time_to_start);
        set!(d, "time_interval", row.time_interval);
        set!(d, "interval_type", row.interval_type);
        set!(d, "hold_percentage", row.hold_percentage);
        set!(d, "bet_percentage", row.bet_percentage);
        set!(d, "win_pool_total", row.win_pool_total);
        set!(d, "place_pool_total", row.place_pool_total);
        set!(d, "win_pool_amount", row.win_pool_amount);
        set!(d, "place_pool_amount", row.place_pool_amount);
        set!(d, "total_pool_amount", row.total_pool_amount);
        set!(d, "win_pool_percentage", row.win_pool_percentage);
        set!(d, "place_pool_percentage", row.place_pool_percentage);
        set!(d, "incremental_win_amount", row.incremental_win_amount);
        set!(d, "incremental_place_amount", row.incremental_place_amount);
        set!(d, "is_baseline", row.is_baseline);
        set!(d, "fixed_win_odds", ids.odds(row.odds[0])?);
        set!(d, "fixed_place_odds", ids.odds(row.odds[1])?);
        set!(d, "pool_win_odds", ids.odds(row.odds[2])?);
        set!(d, "pool_place_odds", ids.odds(row.odds[3])?);
        money_flow.append(d)?;
    }

    let odds = PyList::empty(py);
    for c in &u.odds {
        let d = record!(py, ["race_id", "entrant_id", "type", "odds", "event_timestamp"]);
        set!(d, "race_id", race_id);
        set!(d, "entrant_id", ids.get(&c.entrant_id));
        set!(d, "type", ids.get(c.odds_type));
        set!(d, "odds", ids.odds(c.hundredths)?);
        set!(d, "event_timestamp", polled_at);
        odds.append(d)?;
    }
    debug_assert_eq!(ODDS_TYPES.len(), 4);

    let results = match &u.results {
        None => None,
        Some(res) => {
            let d = record!(
                py,
                [
                    "race_id",
                    "results_available",
                    "results_data",
                    "dividends_data",
                    "fixed_odds_data",
                    "result_status",
                    "photo_finish",
                    "stewards_inquiry",
                    "protest_lodged",
                    "result_time"
                ]
            );
            set!(d, "race_id", race_id);
            set!(d, "results_available", res.results_available);
            let rl = PyList::empty(py);
            for item in &res.results_data {
                rl.append(json_to_py(py, &mut ids, item)?)?;
            }
            set!(d, "results_data", rl);
            let dl = PyList::empty(py);
            for item in &res.dividends_data {
                dl.append(json_to_py(py, &mut ids, item)?)?;
            }
            set!(d, "dividends_data", dl);
            let fo = PyDict::new(py);
            for (key, f) in &res.fixed_odds_data {
                let entry = record!(py, ["entrant_id", "runner_name", "fixed_win_odds", "fixed_place_odds"]);
                set!(entry, "entrant_id", ids.get(&f.entrant_id));
                set!(entry, "runner_name", f.runner_name.as_ref());
                set!(entry, "fixed_win_odds", ids.odds(f.fixed_win_odds)?);
                set!(entry, "fixed_place_odds", ids.odds(f.fixed_place_odds)?);
                fo.set_item(key, entry)?;
            }
            set!(d, "fixed_odds_data", fo);
            set!(d, "result_status", res.result_status);
            set!(d, "photo_finish", res.photo_finish);
            set!(d, "stewards_inquiry", res.stewards_inquiry);
            set!(d, "protest_lodged", res.protest_lodged);
            set!(d, "result_time", res.result_time);
            Some(d)
        }
    };

    let moves = PyList::empty(py);
    for m in &u.moves {
        moves.append(move_to_py(
            py,
            ids.get(&m.entrant_id),
            m.kind,
            m.time_interval,
            m.previous_interval,
            m.value,
        )?)?;
    }

    let quality = PyList::empty(py);
    for f in &u.quality {
        let d = record!(py, ["check", "level", "message", "value"]);
        set!(d, "check", f.check);
        set!(d, "level", f.level);
        set!(d, "message", &f.message);
        set!(d, "value", f.value);
        quality.append(d)?;
    }

    let d = record!(
        py,
        [
            "race_id",
            "polled_at",
            "source_generated_at",
            "race",
            "meeting",
            "entrants",
            "money_flow",
            "odds",
            "pools",
            "results",
            "quality",
            "moves",
            "state"
        ]
    );
    set!(d, "race_id", race_id);
    set!(d, "polled_at", polled_at);
    set!(d, "source_generated_at", u.source_generated_at);
    set!(d, "race", race);
    set!(d, "meeting", meeting);
    set!(d, "entrants", entrants);
    set!(d, "money_flow", money_flow);
    set!(d, "odds", odds);
    set!(d, "pools", u.pools.as_ref().map(|p| pools_to_py(py, p)).transpose()?);
    set!(d, "results", results);
    set!(d, "quality", quality);
    set!(d, "moves", moves);
    set!(d, "state", state_to_py(py, &mut ids, &u.state, prior, dicts)?);
    Ok(d)
}

fn move_to_py<'py>(
    py: Python<'py>,
    entrant_id: Bound<'py, PyString>,
    kind: MoveKind,
    time_interval: i64,
    previous_interval: i64,
    value: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let d = record!(py, ["entrant_id", "kind", "time_interval", "previous_interval", "value"]);
    set!(d, "entrant_id", entrant_id);
    set!(d, "kind", kind.as_str());
    set!(d, "time_interval", time_interval);
    set!(d, "previous_interval", previous_interval);
    set!(d, "value", value);
    Ok(d)
}

/// Reads `key` (interned) from an argument dict of `moves`; `path` names it in an error.
fn move_field<'py, T: FromPyObject<'py>>(
    d: &Bound<'py, PyDict>,
    key: &Bound<'py, PyString>,
    path: &str,
) -> PyResult<T> {
    match d.get_item(key)? {
        Some(value) => value.extract().map_err(|e| PyValueError::new_err(format!("{path}.{key}: {e}"))),
        None => Err(PyValueError::new_err(format!("{path}.{key}: missing"))),
    }
}

/// The runner's cell in one column (`None` when the column has no row of it).
fn column_cell(column: &Bound<'_, PyDict>, entrant_id: &str, name: &str) -> PyResult<Option<Cell>> {
    let py = column.py();
    let Some(value) = column.get_item(entrant_id)? else { return Ok(None) };
    let path = format!("{name}[{entrant_id:?}]");
    let d =
        value.downcast::<PyDict>().map_err(|_| PyValueError::new_err(format!("{path}: expected a dict")))?;
    Ok(Some(Cell {
        incremental_win_amount: move_field(d, intern!(py, "incremental_win_amount"), &path)?,
        incremental_place_amount: move_field(d, intern!(py, "incremental_place_amount"), &path)?,
        fixed_win_odds: move_field(d, intern!(py, "fixed_win_odds"), &path)?,
        pool_win_odds: move_field(d, intern!(py, "pool_win_odds"), &path)?,
    }))
}

/// The moves of one poll in column `time_interval` (see `raceday_core::moves`).
#[pyfunction(name = "moves")]
fn column_moves<'py>(
    py: Python<'py>,
    time_interval: i64,
    runners: Vec<Bound<'py, PyDict>>,
    previous: Bound<'py, PyDict>,
    current: Bound<'py, PyDict>,
) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    let Some(previous_interval) = moves::previous_column(time_interval) else { return Ok(out) };
    let mut ids = Vec::with_capacity(runners.len());
    let mut columns = Vec::with_capacity(runners.len());
    for (i, runner) in runners.iter().enumerate() {
        let path = format!("runners[{i}]");
        let id: Bound<'py, PyString> = move_field(runner, intern!(py, "entrant_id"), &path)?;
        let text = id.to_str()?;
        columns.push(RunnerColumns {
            scratched: move_field(runner, intern!(py, "scratched"), &path)?,
            previous: column_cell(&previous, text, "previous")?,
            current: column_cell(&current, text, "current")?,
        });
        ids.push(id);
    }
    let found = py.allow_threads(|| moves::moves(&columns));
    for m in found {
        let id =
            ids.get(m.runner).cloned().ok_or_else(|| PyValueError::new_err("move of an unknown runner"))?;
        out.append(move_to_py(py, id, m.kind, time_interval, previous_interval, m.value)?)?;
    }
    Ok(out)
}

/// The timeline column before `time_interval`, or None for the first (60).
#[pyfunction]
fn previous_column(time_interval: i64) -> Option<i64> {
    moves::previous_column(time_interval)
}

#[pymodule]
fn _raceday_core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let errors = m.py().import("raceday_core.errors")?;
    for name in ["PayloadError", "PayloadDecodeError", "PayloadSchemaError"] {
        m.add(name, errors.getattr(name)?)?;
    }
    m.add_function(wrap_pyfunction!(version, m)?)?;
    m.add_function(wrap_pyfunction!(round_half_up, m)?)?;
    m.add_function(wrap_pyfunction!(hundredths, m)?)?;
    m.add_function(wrap_pyfunction!(time_to_start, m)?)?;
    m.add_function(wrap_pyfunction!(bucket, m)?)?;
    m.add_function(wrap_pyfunction!(interval_type, m)?)?;
    m.add_function(wrap_pyfunction!(pool_amounts, m)?)?;
    m.add_function(wrap_pyfunction!(transform, m)?)?;
    m.add_function(wrap_pyfunction!(event_summary, m)?)?;
    m.add_function(wrap_pyfunction!(archive::inflate_payload, m)?)?;
    m.add_function(wrap_pyfunction!(column_moves, m)?)?;
    m.add_function(wrap_pyfunction!(previous_column, m)?)?;
    m.add("ALERT_THRESHOLD", moves::ALERT_THRESHOLD)?;
    m.add("MOVE_KINDS", PyTuple::new(m.py(), vocab::MOVE_KINDS)?)?;
    m.add_function(wrap_pyfunction!(encoded::transform_encoded, m)?)?;
    m.add_function(wrap_pyfunction!(write::write_document, m)?)?;
    m.add_class::<write::WriteDocument>()?;
    m.add("RACE_STATUSES", PyTuple::new(m.py(), vocab::RACE_STATUSES)?)?;
    m.add("CATEGORIES", PyTuple::new(m.py(), vocab::CATEGORIES)?)?;
    m.add("INTERVAL_TYPES", PyTuple::new(m.py(), vocab::INTERVAL_TYPES)?)?;
    m.add("ODDS_TYPES", PyTuple::new(m.py(), vocab::ODDS_TYPES)?)?;
    m.add("RESULT_STATUSES", PyTuple::new(m.py(), vocab::RESULT_STATUSES)?)?;
    Ok(())
}

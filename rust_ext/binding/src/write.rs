//! The writer's entry point: a serialised `WriteRaceUpdateRequest` in, the checked documents of
//! `raceday_write_poll` out (see `raceday_core::wire::write`).

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use raceday_core::wire::write;

/// One update, checked and rendered for the writer's `raceday_write_poll` (attributes as in
/// `raceday_core::wire::write::WriteDocument`).
#[pyclass(frozen, get_all, module = "raceday_core")]
pub struct WriteDocument {
    race_id: String,
    polled_at: String,
    generated_at: Option<String>,
    baseline: bool,
    meeting: String,
    race: String,
    entrants: String,
    money_flow: Option<String>,
    odds: Option<String>,
    pools: Option<String>,
    results: Option<String>,
    alerts: Option<String>,
    money_flow_rows: usize,
    odds_rows: usize,
    series_instants_us: Vec<i64>,
    entrants_without_id: usize,
    duplicate_entrant_ids: Vec<String>,
}

impl From<write::WriteDocument> for WriteDocument {
    fn from(d: write::WriteDocument) -> Self {
        Self {
            race_id: d.race_id,
            polled_at: d.polled_at,
            generated_at: d.generated_at,
            baseline: d.baseline,
            meeting: d.meeting,
            race: d.race,
            entrants: d.entrants,
            money_flow: d.money_flow,
            odds: d.odds,
            pools: d.pools,
            results: d.results,
            alerts: d.alerts,
            money_flow_rows: d.money_flow_rows,
            odds_rows: d.odds_rows,
            series_instants_us: d.series_instants_us,
            entrants_without_id: d.entrants_without_id,
            duplicate_entrant_ids: d.duplicate_entrant_ids,
        }
    }
}

/// Check and render a serialised `WriteRaceUpdateRequest`; `ValueError` names what is wrong.
#[pyfunction]
pub fn write_document(py: Python<'_>, request: &[u8]) -> PyResult<WriteDocument> {
    py.allow_threads(|| write::write_document(request))
        .map(WriteDocument::from)
        .map_err(|e| PyValueError::new_err(e.0))
}

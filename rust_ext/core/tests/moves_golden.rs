//! The hand-computed moves of tests/fixtures/moves_golden.json (the same file the Python tests and
//! the dashboard's browser test read) against `raceday_core::moves`.

use raceday_core::moves::{moves, previous_column, Cell, RunnerColumns};
use serde_json::Value;

const GOLDEN: &str = include_str!("../../../tests/fixtures/moves_golden.json");

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn cell(column: &Value, entrant_id: &str) -> Option<Cell> {
    let c = column.get(entrant_id)?;
    Some(Cell {
        incremental_win_amount: c["incremental_win_amount"].as_i64()?,
        incremental_place_amount: c["incremental_place_amount"].as_i64()?,
        fixed_win_odds: c["fixed_win_odds"].as_f64(),
        pool_win_odds: c["pool_win_odds"].as_f64(),
    })
}

#[test]
fn every_golden_case() -> TestResult {
    let doc: Value = serde_json::from_str(GOLDEN)?;
    let cases = doc["cases"].as_array().ok_or("no cases")?;
    assert!(cases.len() >= 9);
    for case in cases {
        let name = case["name"].as_str().unwrap_or_default();
        let b = case["time_interval"].as_i64().ok_or("time_interval")?;
        assert_eq!(previous_column(b), case["previous_interval"].as_i64(), "{name}");
        let runners = case["runners"].as_array().ok_or("runners")?;
        let ids: Vec<&str> = runners.iter().map(|r| r["entrant_id"].as_str().unwrap_or_default()).collect();
        let columns: Vec<RunnerColumns> = runners
            .iter()
            .zip(&ids)
            .map(|(r, id)| RunnerColumns {
                scratched: r["scratched"].as_bool().unwrap_or(false),
                previous: cell(&case["previous"], id),
                current: cell(&case["current"], id),
            })
            .collect();
        let got: Vec<(&str, &str, f64)> =
            moves(&columns).iter().map(|m| (ids[m.runner], m.kind.as_str(), m.value)).collect();
        let expected = case["moves"].as_array().ok_or("moves")?;
        assert_eq!(got.len(), expected.len(), "{name}: {got:?}");
        for ((id, kind, value), want) in got.iter().zip(expected) {
            assert_eq!(
                (*id, *kind),
                (want["entrant_id"].as_str().unwrap_or_default(), want["kind"].as_str().unwrap_or_default()),
                "{name}"
            );
            let w = want["value"].as_f64().ok_or("value")?;
            assert!((value - w).abs() <= 1e-9 * w.abs().max(1.0), "{name}: {id} {kind} {value} != {w}");
        }
    }
    Ok(())
}

//! Every golden vector of spec/money-flow.md, read from tests/fixtures/golden/*.json (the same
//! files the Python tests run against the binding and the reference).

use raceday_core::numeric::{bucket, hundredths, interval_type, pool_amounts, round_half_up, time_to_start};
use raceday_core::state::{LastOdds, PriorState};
use raceday_core::transform::{money_tracker, to_odds, transform};
use raceday_core::update::RaceUpdate;
use serde_json::{json, Value};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const ROUNDING: &str = include_str!("../../../tests/fixtures/golden/rounding.json");
const AMOUNTS: &str = include_str!("../../../tests/fixtures/golden/amounts.json");
const TIME: &str = include_str!("../../../tests/fixtures/golden/time_to_start.json");
const INCREMENTS: &str = include_str!("../../../tests/fixtures/golden/increments.json");
const ODDS: &str = include_str!("../../../tests/fixtures/golden/odds.json");
const RECORDED: &str = include_str!("../../../tests/fixtures/golden/recorded_event.json");
const EVENT: &[u8] = include_bytes!("../../../tests/fixtures/nztab/race-event-final.json");

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn i(v: &Value) -> i64 {
    v.as_i64().unwrap_or(i64::MIN)
}

fn rows(doc: &Value, key: &str) -> Vec<Value> {
    doc[key].as_array().cloned().unwrap_or_default()
}

#[test]
fn rounding_is_half_up_and_odds_are_hundredths() -> TestResult {
    let doc: Value = serde_json::from_str(ROUNDING)?;
    for r in rows(&doc, "round_half_up") {
        assert_eq!(round_half_up(f(&r[0]))?, i(&r[1]), "R({})", r[0]);
    }
    for r in rows(&doc, "hundredths") {
        assert_eq!(hundredths(f(&r[0]))?, i(&r[1]), "hundredths({})", r[0]);
    }
    Ok(())
}

fn close(actual: Option<f64>, expected: &Value) -> bool {
    match (actual, expected.as_f64()) {
        (None, None) => expected.is_null(),
        (Some(a), Some(e)) => (a - e).abs() <= 1e-9,
        _ => false,
    }
}

#[test]
fn amounts_follow_the_operation_order() -> TestResult {
    let doc: Value = serde_json::from_str(AMOUNTS)?;
    for r in rows(&doc, "amounts") {
        let a = pool_amounts(f(&r[0]), i(&r[1]), i(&r[2]))?;
        assert_eq!((a.win, a.place, a.total), (i(&r[3]), i(&r[4]), i(&r[5])), "{r}");
        assert!(close(a.win_pct, &r[6]) && close(a.place_pct, &r[7]), "{r}: {a:?}");
    }
    for r in rows(&doc, "operation_order") {
        assert_eq!(pool_amounts(f(&r[0]), i(&r[1]), 0)?.win, i(&r[2]), "{r}");
    }
    for r in rows(&doc, "half_up") {
        let a = pool_amounts(f(&r[0]), i(&r[1]), i(&r[2]))?;
        assert_eq!((a.win, a.place, a.total), (i(&r[3]), i(&r[4]), i(&r[5])), "{r}");
    }
    Ok(())
}

#[test]
fn time_to_start_buckets_and_interval_types() -> TestResult {
    let doc: Value = serde_json::from_str(TIME)?;
    let adv = i(&doc["advertised_start"]);
    for p in rows(&doc, "polls") {
        let t = time_to_start(adv, i(&p["polled_at_ms"]))?;
        assert_eq!(t, i(&p["time_to_start"]), "{}", p["polled_at"]);
        assert_eq!(bucket(t), i(&p["bucket"]), "{}", p["polled_at"]);
        assert_eq!(interval_type(t), p["interval_type"].as_str().unwrap_or(""), "{}", p["polled_at"]);
    }
    for r in rows(&doc, "buckets") {
        assert_eq!(bucket(i(&r[0])), i(&r[1]), "bucket({})", r[0]);
    }
    for r in rows(&doc, "interval_types") {
        assert_eq!(interval_type(i(&r[0])), r[1].as_str().unwrap_or(""), "interval_type({})", r[0]);
    }
    Ok(())
}

/// A minimal open race with one runner, pools and tracker as given.
fn open_race(adv: i64, win_cents: i64, place_cents: i64, hold: f64, fixed_win: Option<f64>) -> Vec<u8> {
    let dollars = |c: i64| format!("{}.{:02}", c / 100, c % 100);
    let payload = format!(
        r#"{{"header": {{"generated_time": "2025-07-17T00:00:00Z"}}, "data": {{
            "race": {{"event_id": "golden-race", "meeting_id": "golden-meeting", "race_number": 1,
                      "status": "Open", "advertised_start": {adv}, "race_date_nz": "2025-07-17"}},
            "runners": [{{"entrant_id": "e1", "runner_number": 1, "name": "One", "odds": {{"fixed_win": {fw}}}}}],
            "money_tracker": {{"entrants": [{{"entrant_id": "e1", "hold_percentage": {hold}, "bet_percentage": 1}}]}},
            "tote_pools": [{{"product_type": "Win", "total": {w}}}, {{"product_type": "Place", "total": {p}}}],
            "error": ""}}}}"#,
        fw = fixed_win.map_or("null".to_owned(), |x| x.to_string()),
        w = dollars(win_cents),
        p = dollars(place_cents),
    );
    payload.into_bytes()
}

#[test]
fn increment_sequences_hand_state_from_poll_to_poll() -> TestResult {
    let doc: Value = serde_json::from_str(INCREMENTS)?;
    let sequences = doc["sequences"].as_object().cloned().unwrap_or_default();
    assert_eq!(sequences.len(), 3);
    for (name, sequence) in sequences {
        let mut state = PriorState::empty("golden-race");
        for (n, p) in rows(&sequence, "polls").iter().enumerate() {
            let adv = i(&p["advertised_start"]);
            let polled_at = adv * 1000 - i(&p["time_to_start"]) * 60_000;
            let payload = open_race(adv, i(&p["win_cents"]), i(&p["place_cents"]), f(&p["hold"]), None);
            let update: RaceUpdate<'_> = transform(&payload, polled_at, &state)?;
            let row = update.money_flow.first().ok_or("no money-flow row")?;
            let got = (
                row.time_to_start,
                row.time_interval,
                row.win_pool_amount,
                row.place_pool_amount,
                row.incremental_win_amount,
                row.incremental_place_amount,
                row.is_baseline,
            );
            let want = (
                i(&p["time_to_start"]),
                i(&p["bucket"]),
                i(&p["win"]),
                i(&p["place"]),
                i(&p["incremental_win"]),
                i(&p["incremental_place"]),
                p["is_baseline"].as_bool().unwrap_or(false),
            );
            assert_eq!(got, want, "{name}, poll {}", n + 1);
            assert!(
                update.quality.iter().all(|q| q.check != "increment_invariant"),
                "{name}: {:?}",
                update.quality
            );
            state = update.state;
        }
        // §7.3: the increments of the latest polls of the effective buckets sum to the latest
        // amount (checked here on the expected table, above on every computed row).
        let polls = rows(&sequence, "polls");
        let effective: Vec<i64> = rows(&sequence, "effective_buckets").iter().map(i).collect();
        let latest_in = |b: i64| polls.iter().rev().find(|p| i(&p["bucket"]) == b);
        let (mut win, mut place) = (0, 0);
        for b in &effective {
            let p = latest_in(*b).ok_or("bucket without a poll")?;
            win += i(&p["incremental_win"]);
            place += i(&p["incremental_place"]);
        }
        assert_eq!((win, place), (i(&sequence["latest_win"]), i(&sequence["latest_place"])), "{name}");
    }
    Ok(())
}

#[test]
fn odds_changes_compare_hundredths() -> TestResult {
    let doc: Value = serde_json::from_str(ODDS)?;
    for case in rows(&doc, "changes") {
        let mut state = PriorState::empty("golden-race");
        if case["last"] != json!("none") {
            state.odds.push(LastOdds {
                entrant_id: "e1".into(),
                odds_type: "fixed_win".into(),
                odds: case["last"].as_f64(),
            });
        }
        let payload = open_race(1_752_713_400, 100_000, 50_000, 10.0, case["current"].as_f64());
        let update = transform(&payload, 1_752_713_400_000 - 600_000, &state)?;
        let fixed_win: Vec<_> = update.odds.iter().filter(|o| o.odds_type == "fixed_win").collect();
        let write = case["write"].as_bool().unwrap_or(false);
        assert_eq!(fixed_win.len(), usize::from(write), "{case}");
        if let Some(change) = fixed_win.first() {
            assert_eq!(change.hundredths.map(to_odds), case["current"].as_f64(), "{case}");
        }
    }
    Ok(())
}

#[test]
fn duplicate_prior_odds_count_as_the_last_of_them() -> TestResult {
    let payload = open_race(1_752_713_400, 100_000, 50_000, 10.0, Some(3.0));
    let polled_at = 1_752_713_400_000 - 600_000;
    for (first, last, changed) in [(2.0, 3.0, false), (3.0, 2.0, true)] {
        let mut state = PriorState::empty("golden-race");
        for odds in [first, last] {
            state.odds.push(LastOdds {
                entrant_id: "e1".into(),
                odds_type: "fixed_win".into(),
                odds: Some(odds),
            });
        }
        let update = transform(&payload, polled_at, &state)?;
        let fixed_win = update.odds.iter().filter(|o| o.odds_type == "fixed_win").count();
        assert_eq!(fixed_win, usize::from(changed), "prior {first} then {last}");
        let kept: Vec<_> = update.state.odds.iter().filter(|o| &*o.odds_type == "fixed_win").collect();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].odds, Some(3.0));
    }
    Ok(())
}

#[test]
fn race_date_is_kept_when_valid_and_left_absent_otherwise() -> TestResult {
    // The core has no NZ calendar: a missing or invalid race_date_nz stays absent (the Python
    // side derives it from the advertised start with services/common/nztime).
    let valid = open_race(1_752_713_400, 100_000, 50_000, 10.0, None);
    let text = String::from_utf8(valid.clone())?;
    let cases = [
        (valid, Some("2025-07-17"), None),
        (text.replace(r#", "race_date_nz": "2025-07-17""#, "").into_bytes(), None, None),
        (text.replace(r#""2025-07-17"}"#, "null}").into_bytes(), None, None),
        (
            text.replace(r#""2025-07-17"}"#, r#""17/07/2025"}"#).into_bytes(),
            None,
            Some("data.race.race_date_nz: expected YYYY-MM-DD, got a string that is not YYYY-MM-DD"),
        ),
        (
            text.replace(r#""2025-07-17"}"#, "20250717}").into_bytes(),
            None,
            Some("data.race.race_date_nz: expected YYYY-MM-DD, got number"),
        ),
    ];
    for (payload, date, finding) in cases {
        let update = transform(&payload, 1_752_712_800_000, &PriorState::empty(""))?;
        assert_eq!(update.race.race_date_nz.as_deref(), date);
        assert_eq!(update.meeting.date.as_deref(), date);
        let findings: Vec<&str> = update
            .quality
            .iter()
            .filter(|q| q.message.contains("race_date_nz"))
            .map(|q| q.message.as_str())
            .collect();
        assert_eq!(findings, finding.into_iter().collect::<Vec<_>>());
    }
    Ok(())
}

fn pools_match(update: &RaceUpdate<'_>, want: &Value) -> TestResult {
    let p = update.pools.as_ref().ok_or("no pools")?;
    let got = json!({
        "win_pool_total": p.win_pool_total, "place_pool_total": p.place_pool_total,
        "quinella_pool_total": p.quinella_pool_total, "trifecta_pool_total": p.trifecta_pool_total,
        "exacta_pool_total": p.exacta_pool_total, "first4_pool_total": p.first4_pool_total,
        "total_race_pool": p.total_race_pool, "extracted_pools": p.extracted_pools,
        "data_quality_score": p.data_quality_score, "source": p.source,
    });
    assert_eq!(&got, want);
    Ok(())
}

#[test]
fn recorded_event_pools_with_and_without_tote_pools() -> TestResult {
    let doc: Value = serde_json::from_str(RECORDED)?;
    let state = PriorState::empty("");
    pools_match(&transform(EVENT, 1_752_713_400_000, &state)?, &doc["pools"])?;
    let mut event: Value = serde_json::from_slice(EVENT)?;
    event["data"]["tote_pools"] = json!([]);
    let without = serde_json::to_vec(&event)?;
    pools_match(&transform(&without, 1_752_713_400_000, &state)?, &doc["dividends_fallback"])?;
    Ok(())
}

#[test]
fn recorded_event_money_tracker_is_summed() -> TestResult {
    let doc: Value = serde_json::from_str(RECORDED)?;
    let t = money_tracker(EVENT)?.ok_or("no tracker")?;
    let (rows, shares, unknown, hold_sum) = (t.rows, t.shares, t.unknown_ids, t.hold_sum);
    let want = &doc["tracker"];
    assert_eq!(i64::try_from(rows)?, i(&want["rows"]));
    assert_eq!(i64::try_from(shares.len())?, i(&want["distinct_ids"]));
    assert_eq!(i64::try_from(unknown)?, i(&want["ids_not_runners"]));
    assert!((hold_sum - f(&want["hold_sum"])).abs() < 1e-9);
    // Summing, not "last row": every runner's last row is 0/0, yet shares are non-zero.
    assert!(shares.iter().filter(|(_, h, _)| *h > 0.0).count() >= 8);
    Ok(())
}

#[test]
fn recorded_event_results() -> TestResult {
    let doc: Value = serde_json::from_str(RECORDED)?;
    let want = &doc["results"];
    let update = transform(EVENT, 1_752_751_019_000, &PriorState::empty(""))?;
    let r = update.results.as_ref().ok_or("no results")?;
    assert_eq!(r.results_available, want["results_available"].as_bool().unwrap_or(false));
    assert_eq!(i64::try_from(r.results_data.len())?, i(&want["results_count"]));
    let first = &r.results_data[0];
    assert_eq!(first.get("name").and_then(|j| j.as_str()), want["first"]["name"].as_str());
    assert_eq!(first.get("runner_number").and_then(|j| j.as_i64()), want["first"]["runner_number"].as_i64());
    let mut kept = serde_json::Map::new();
    for d in &r.dividends_data {
        assert_eq!(d.get("status").and_then(|j| j.as_str()), Some("Final"));
        let product = d.get("product_name").and_then(|j| j.as_str()).unwrap_or("").to_owned();
        let n = kept.get(&product).and_then(Value::as_i64).unwrap_or(0);
        kept.insert(product, json!(n + 1));
    }
    assert_eq!(Value::Object(kept), want["dividends_kept"]);
    let upstream: Value = serde_json::from_slice(EVENT)?;
    assert_eq!(upstream["data"]["dividends"].as_array().map(Vec::len), Some(14));
    assert_eq!(i64::try_from(r.fixed_odds_data.len())?, i(&want["fixed_odds_entries"]));
    let (_, two) = r.fixed_odds_data.iter().find(|(k, _)| k == "2").ok_or("no entry 2")?;
    let got = json!({
        "entrant_id": two.entrant_id, "runner_name": two.runner_name,
        "fixed_win_odds": two.fixed_win_odds.map(to_odds), "fixed_place_odds": two.fixed_place_odds.map(to_odds),
    });
    assert_eq!(got, want["fixed_odds_2"]);
    assert_eq!(r.result_status, want["result_status"].as_str().unwrap_or(""));
    assert_eq!(
        (r.photo_finish, r.stewards_inquiry, r.protest_lodged),
        (false, false, false),
        "flags of the recorded event"
    );
    Ok(())
}

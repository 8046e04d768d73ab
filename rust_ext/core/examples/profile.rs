//! Times the core on a payload (best of many runs):
//! `cargo run --release --example profile [PAYLOAD]`.
use std::hint::black_box;
use std::time::Instant;

fn best(n: u32, mut f: impl FnMut()) -> std::time::Duration {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path =
        std::env::args().nth(1).unwrap_or_else(|| "../../tests/fixtures/nztab/race-event-final.json".into());
    let p = std::fs::read(path)?;
    let text = std::str::from_utf8(&p)?;
    let state = raceday_core::PriorState::empty("");
    let skip = best(3000, || {
        black_box(
            raceday_core::json::read_document::<raceday_core::json::Scalar<'_>>(black_box(text)).is_ok(),
        );
    });
    let summary = best(3000, || {
        black_box(raceday_core::event_summary(black_box(&p)).is_ok());
    });
    let transform = best(3000, || {
        black_box(raceday_core::transform(black_box(&p), 1_752_713_400_000, &state).is_ok());
    });
    // One poll's moves for a 16-runner field (what the transform adds per poll in a new column).
    let cell = |i: i64| raceday_core::moves::Cell {
        incremental_win_amount: 10_000 + 997 * i,
        incremental_place_amount: 4_000 - 211 * i,
        fixed_win_odds: Some(1.5 + 0.75 * f64::from(i32::try_from(i).unwrap_or(0))),
        pool_win_odds: None,
    };
    let field: Vec<raceday_core::moves::RunnerColumns> = (0..16)
        .map(|i| raceday_core::moves::RunnerColumns {
            scratched: i == 3,
            previous: Some(cell(i)),
            current: Some(cell(15 - i)),
        })
        .collect();
    let moves = best(30_000, || {
        black_box(raceday_core::moves::moves(black_box(&field)).len());
    });
    println!(
        "validate+skip {skip:?}\nsummary       {summary:?}\ntransform     {transform:?}\nmoves (16)    {moves:?}"
    );
    Ok(())
}

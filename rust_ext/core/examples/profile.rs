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
    println!("validate+skip {skip:?}\nsummary       {summary:?}\ntransform     {transform:?}");
    Ok(())
}

//! Malformed payloads never panic: every truncation and many corruptions of the recorded
//! event give a payload error (or, for corruptions that stay valid, an update).

use raceday_core::{event_summary, transform, PayloadErrorKind, PriorState, TransformError};

const EVENT: &[u8] = include_bytes!("../../../tests/fixtures/nztab/race-event-final.json");

#[test]
fn every_truncation_is_a_decode_error() {
    let state = PriorState::empty("");
    let end = EVENT.iter().rposition(|&b| b == b'}').unwrap_or(EVENT.len());
    for cut in (0..end).step_by(1009).chain([1, 2, end - 1]) {
        match transform(&EVENT[..cut], 1_752_713_400_000, &state) {
            Err(TransformError::Payload(e)) => assert_eq!(e.kind, PayloadErrorKind::Decode, "cut at {cut}"),
            other => panic!("cut at {cut}: {other:?}"),
        }
        assert!(event_summary(&EVENT[..cut]).is_err(), "summary cut at {cut}");
    }
}

#[test]
fn corrupted_bytes_never_panic() {
    let state = PriorState::empty("");
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let alphabet = b"{}[]\",:\\0123456789.eE-+tfnu \x01\xff\xc3";
    let mut outcomes = [0usize; 2];
    for _ in 0..200 {
        let mut payload = EVENT.to_vec();
        for _ in 0..1 + next() % 4 {
            let at = (next() % payload.len() as u64) as usize;
            payload[at] = alphabet[(next() % alphabet.len() as u64) as usize];
        }
        let ok = transform(&payload, 1_752_713_400_000, &state).is_ok();
        let _ = event_summary(&payload);
        outcomes[usize::from(ok)] += 1;
    }
    // Most corruptions break the JSON; some land in text and leave a valid payload.
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
}

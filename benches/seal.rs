//! The cost of sealing at rest, for the README: XChaCha20-Poly1305 + base64 of a 1 KiB event
//! payload, and an event row encoded and decoded plain (as before encryption) against the way
//! the store now does it (through a JSON value, `data` sealed), each the median of many runs.
//! `cargo bench --bench seal`.
#![allow(clippy::cast_precision_loss)]

use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tidings::domain::event::{Event, EventType};
use tidings::domain::ids::{EventId, WorkspaceId};
use tidings::security::crypto::{MasterKey, Sealed};

const RUNS: usize = 20_000;

/// Median time of one call of `f`, in microseconds, over `RUNS` timed batches of 10.
fn median_us(mut f: impl FnMut()) -> f64 {
    for _ in 0..1_000 {
        f();
    }
    let mut times: Vec<Duration> = (0..RUNS / 10)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..10 {
                f();
            }
            start.elapsed() / 10
        })
        .collect();
    times.sort();
    times[times.len() / 2].as_secs_f64() * 1e6
}

fn main() {
    let key = MasterKey::from_bytes(&rand::random::<[u8; 32]>());
    // About 1 KiB of JSON, shaped like an EHR event.
    let data: Map<String, Value> = serde_json::from_value(json!({
        "patient": {"id": 123_456, "name": "Jane Example", "dob": "1980-02-29",
            "address": {"line": "1 Clinic Way", "city": "Springfield", "zip": "00000"}},
        "encounter": {"id": "enc_42", "reason": "x".repeat(828), "provider": "Dr. Who"},
    }))
    .unwrap();
    let plain = serde_json::to_string(&data).unwrap();
    let event = Event {
        id: EventId::generate(0),
        workspace_id: WorkspaceId::generate(0),
        event_type: EventType::parse("patient:admitted").unwrap(),
        occurred_at: 0,
        received_at: 0,
        data,
        test: false,
        subject: None,
        erased: false,
    };
    let sealed = key.seal(&plain);
    let seal = median_us(|| {
        std::hint::black_box(key.seal(std::hint::black_box(&plain)));
    });
    let open = median_us(|| {
        std::hint::black_box(key.open(std::hint::black_box(&sealed)).unwrap());
    });
    let row_plain = median_us(|| {
        std::hint::black_box(serde_json::to_vec(std::hint::black_box(&event)).unwrap());
    });
    let row_sealed = median_us(|| {
        let mut row = serde_json::to_value(std::hint::black_box(&event)).unwrap();
        let data = row.get_mut("data").unwrap();
        let text = serde_json::to_string(data).unwrap();
        *data = Value::String(key.seal(&text).into_string());
        std::hint::black_box(serde_json::to_vec(&row).unwrap());
    });
    let plain_row = serde_json::to_vec(&event).unwrap();
    let mut sealed_row = serde_json::to_value(&event).unwrap();
    sealed_row["data"] = Value::String(sealed.as_str().to_owned());
    let sealed_row = serde_json::to_vec(&sealed_row).unwrap();
    let read_plain = median_us(|| {
        std::hint::black_box(serde_json::from_slice::<Event>(&plain_row).unwrap());
    });
    let read_sealed = median_us(|| {
        let mut row: Value = serde_json::from_slice(&sealed_row).unwrap();
        let data = row.get_mut("data").unwrap();
        let s = Sealed::parse(data.as_str().unwrap()).unwrap();
        *data = serde_json::from_str(key.open(&s).unwrap().expose()).unwrap();
        std::hint::black_box(serde_json::from_value::<Event>(row).unwrap());
    });
    println!(
        "payload {} bytes, sealed {} bytes",
        plain.len(),
        sealed.as_str().len()
    );
    println!("seal 1 KiB: {seal:.2} µs; open: {open:.2} µs");
    println!(
        "event row encode: plain {row_plain:.2} µs, sealed {row_sealed:.2} µs (+{:.2} µs)",
        row_sealed - row_plain
    );
    println!(
        "event row decode: plain {read_plain:.2} µs, sealed {read_sealed:.2} µs (+{:.2} µs)",
        read_sealed - read_plain
    );
}

//! Any request body: `parse_body` answers events or an error, never panics,
//! and what it accepts keeps the envelope's promises.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir::ingest::envelope::{check_type, parse_body};

const RECEIVED_AT: i64 = 1_763_900_000_000;

fuzz_target!(|body: &[u8]| {
    let Ok(events) = parse_body(body, RECEIVED_AT) else {
        return;
    };
    assert!(!events.is_empty(), "an accepted body holds at least one event");
    for event in &events {
        assert!(!event.id.is_empty(), "every event gets an id");
        assert!(check_type(&event.event_type).is_ok(), "accepted a bad type");
        // What is stored must be valid JSON, and so must what is delivered.
        serde_json::from_str::<serde_json::Value>(&event.data).expect("data is JSON");
        let envelope: serde_json::Value =
            serde_json::from_str(&event.envelope_json()).expect("envelope is JSON");
        assert_eq!(envelope["id"], event.id.as_str());
    }
});

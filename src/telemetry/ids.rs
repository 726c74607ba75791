//! Trace identity of an event, derived from what the store keeps of it, so
//! every node computes the same ids without storing them: the trace id and
//! the id of the event's root (`ingest`) span are a hash of its owner, id and
//! `occurred_at`. Plus W3C `traceparent` reading and writing.

use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
use sha2::{Digest, Sha256};

use crate::event::Event;

/// The trace one event belongs to and its root span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTrace {
    pub trace_id: TraceId,
    /// The `ingest` span's id: the parent of every later span of the event.
    pub root: SpanId,
}

impl EventTrace {
    /// The ids of `event`'s trace. `(owner_id, id)` names an event inside
    /// the dedup window; `occurred_at` (the receive time unless the producer
    /// set it) tells apart an id a producer reuses later.
    pub fn of(event: &Event) -> EventTrace {
        let mut h = Sha256::new();
        h.update(b"weir-trace-v1\0");
        // Length-prefixed, so no two different triples hash the same input;
        // an absent owner is not the empty one.
        match &event.owner_id {
            None => h.update([0u8]),
            Some(owner) => {
                h.update([1u8]);
                field(&mut h, owner);
            }
        }
        field(&mut h, &event.id);
        field(&mut h, &event.occurred_at);
        let digest = h.finalize();
        let mut trace = [0u8; 16];
        trace.copy_from_slice(&digest[..16]);
        let mut span = [0u8; 8];
        span.copy_from_slice(&digest[16..24]);
        // All zeros is the invalid id in W3C trace context.
        if trace == [0; 16] {
            trace[15] = 1;
        }
        if span == [0; 8] {
            span[7] = 1;
        }
        EventTrace {
            trace_id: TraceId::from_bytes(trace),
            root: SpanId::from_bytes(span),
        }
    }

    /// The root span as a parent for spans made later, on any node.
    pub fn root_context(&self) -> SpanContext {
        SpanContext::new(
            self.trace_id,
            self.root,
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        )
    }

    /// `traceparent` naming `span` of this trace, sampled.
    pub fn traceparent(&self, span: SpanId) -> String {
        format!("00-{}-{}-01", self.trace_id, span)
    }
}

fn field(h: &mut Sha256, s: &str) {
    h.update((s.len() as u64).to_be_bytes());
    h.update(s.as_bytes());
}

/// The span a producer's `traceparent` names, if it is a valid one.
pub fn parse_traceparent(value: &str) -> Option<SpanContext> {
    use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
    struct One<'a>(&'a str);
    impl Extractor for One<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            (key == "traceparent").then_some(self.0)
        }
        fn keys(&self) -> Vec<&str> {
            vec!["traceparent"]
        }
    }
    use opentelemetry::trace::TraceContextExt as _;
    let propagator = opentelemetry_sdk::propagation::TraceContextPropagator::new();
    let cx = propagator.extract(&One(value.trim()));
    let sc = cx.span().span_context().clone();
    sc.is_valid().then_some(sc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(owner: Option<&str>, id: &str, at: &str) -> Event {
        Event {
            id: id.into(),
            event_type: "record.create".into(),
            owner_id: owner.map(str::to_owned),
            data: "{}".into(),
            occurred_at: at.into(),
        }
    }

    #[test]
    fn the_same_stored_event_gives_the_same_trace_anywhere() {
        let a = event(Some("org_1"), "evt_1", "2026-01-01T00:00:00.000Z");
        let mut b = a.clone();
        // What travels with a delivery may hold other data; only the
        // identity counts.
        b.data = r#"{"x":1}"#.into();
        assert_eq!(EventTrace::of(&a), EventTrace::of(&b));
        // Pinned: a change here splits an event's trace between nodes of
        // two weir versions during a rolling upgrade.
        let t = EventTrace::of(&a);
        assert_eq!(t.trace_id.to_string(), "8cb1fc7a25299395e3db57b3cc68908e");
        assert_eq!(t.root.to_string(), "1511eb15af2f1dbe");
    }

    #[test]
    fn owner_id_and_time_each_tell_events_apart() {
        let base = EventTrace::of(&event(Some("o"), "e", "t"));
        for other in [
            event(None, "e", "t"),
            event(Some(""), "e", "t"),
            event(Some("o"), "e2", "t"),
            event(Some("o"), "e", "t2"),
            // Length prefixes: moving a character between fields changes it.
            event(Some("oe"), "", "t"),
        ] {
            let t = EventTrace::of(&other);
            assert_ne!(t.trace_id, base.trace_id, "{other:?}");
            assert_ne!(t.root, base.root, "{other:?}");
        }
    }

    #[test]
    fn traceparent_round_trips() {
        let t = EventTrace::of(&event(None, "e", "t"));
        let span = SpanId::from_bytes([1, 2, 3, 4, 5, 6, 7, 8]);
        let header = t.traceparent(span);
        assert_eq!(header.len(), 55);
        assert!(header.starts_with("00-") && header.ends_with("-0102030405060708-01"));
        let sc = parse_traceparent(&header).expect("valid");
        assert_eq!((sc.trace_id(), sc.span_id()), (t.trace_id, span));
        assert!(sc.is_remote() && sc.is_sampled());
    }

    #[test]
    fn bad_traceparents_are_ignored() {
        for bad in [
            "",
            "garbage",
            "00-00000000000000000000000000000000-0102030405060708-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad:?}");
        }
        let ok = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
            .expect("an unsampled parent is still a parent");
        assert!(!ok.is_sampled());
    }
}

//! Parsing what producers POST: one envelope or an array of up to
//! [`MAX_BATCH`]. A batch is all or nothing: the first bad event rejects the
//! request, and the error names the event's index and what was wrong.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::event::{Event, Millis, rfc3339};

pub const MAX_BATCH: usize = 1000;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EnvelopeError {
    #[error("body is not valid JSON: {0}")]
    Json(String),
    #[error("body must be an event object or an array of them")]
    NotObjectOrArray,
    #[error("a batch holds at most {MAX_BATCH} events, this one has {0}")]
    TooMany(usize),
    #[error("a batch must hold at least one event")]
    Empty,
    #[error("{at}: {message}")]
    Invalid { at: String, message: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire<'a> {
    #[serde(default)]
    id: Option<String>,
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default)]
    owner_id: Option<String>,
    #[serde(borrow)]
    data: &'a RawValue,
    #[serde(default)]
    occurred_at: Option<String>,
}

/// Parses a request body into events, assigning ids and `occurred_at`.
pub fn parse_body(body: &[u8], received_at: Millis) -> Result<Vec<Event>, EnvelopeError> {
    let text = std::str::from_utf8(body).map_err(|e| EnvelopeError::Json(e.to_string()))?;
    match text.trim_start().as_bytes().first() {
        Some(b'{') => Ok(vec![parse_one(text, "event", received_at)?]),
        Some(b'[') => {
            let items: Vec<&RawValue> =
                serde_json::from_str(text).map_err(|e| EnvelopeError::Json(e.to_string()))?;
            if items.is_empty() {
                return Err(EnvelopeError::Empty);
            }
            if items.len() > MAX_BATCH {
                return Err(EnvelopeError::TooMany(items.len()));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, raw)| parse_one(raw.get(), &format!("event[{i}]"), received_at))
                .collect()
        }
        _ => match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Err(e) => Err(EnvelopeError::Json(e.to_string())),
            Ok(_) => Err(EnvelopeError::NotObjectOrArray),
        },
    }
}

fn parse_one(text: &str, at: &str, received_at: Millis) -> Result<Event, EnvelopeError> {
    let invalid = |message: String| EnvelopeError::Invalid {
        at: at.to_owned(),
        message,
    };
    if !text.trim_start().starts_with('{') {
        return Err(invalid("must be a JSON object".into()));
    }
    let wire: Wire = serde_json::from_str(text).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => invalid(strip_position(&e)),
        _ => EnvelopeError::Json(e.to_string()),
    })?;
    check_type(&wire.event_type).map_err(invalid)?;
    crate::json::check_interoperable(wire.data.get())
        .map_err(|e| invalid(format!("data: {}", strip_position(&e))))?;
    let id = match wire.id {
        Some(id) => {
            check_id(&id).map_err(|m| invalid(format!("id: {m}")))?;
            id
        }
        None => format!("evt_{}", ulid::Ulid::new().to_string().to_lowercase()),
    };
    if let Some(owner) = &wire.owner_id {
        check_id(owner).map_err(|m| invalid(format!("owner_id: {m}")))?;
    }
    let occurred_at = match wire.occurred_at {
        Some(t) => {
            chrono::DateTime::parse_from_rfc3339(&t)
                .map_err(|e| invalid(format!("occurred_at {t:?} is not RFC 3339 ({e})")))?;
            t
        }
        None => rfc3339(received_at),
    };
    Ok(Event {
        id,
        event_type: wire.event_type,
        owner_id: wire.owner_id,
        data: wire.data.get().to_owned(),
        occurred_at,
    })
}

/// `type`: 1..=128 chars of `[a-z0-9_.-]`.
pub fn check_type(t: &str) -> Result<(), String> {
    let ok = !t.is_empty()
        && t.len() <= 128
        && t.bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "type {t:?} must be 1..=128 characters of [a-z0-9_.-]"
        ))
    }
}

/// An event id or an owner id, wherever one is given (events, webhook
/// `owners`, a token's owner): 1..=255 characters, none of them control
/// characters.
pub fn check_id(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 255 {
        return Err("must be 1..=255 characters".into());
    }
    if s.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

fn strip_position(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.find(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Millis = 1_700_000_000_000;

    #[test]
    fn single_event_keeps_data_bytes_and_fills_defaults() {
        let body = br#"{"type":"record.create","data":{"b": 1,  "a":[2]}}"#;
        let ev = parse_body(body, T).unwrap().remove(0);
        assert_eq!(ev.data, r#"{"b": 1,  "a":[2]}"#);
        assert!(ev.id.starts_with("evt_"));
        assert_eq!(ev.occurred_at, "2023-11-14T22:13:20.000Z");
        assert_eq!(ev.owner_id, None);
    }

    // Found by the `envelope` fuzz target: valid JSON text whose number no
    // double can hold was accepted, then failed every parser downstream.
    #[test]
    fn data_with_a_number_no_double_holds_is_refused() {
        let body = br#"[{"type":"a.b","data":1},{"type":"a.b","data":{"lon":-1046e6666666666}}]"#;
        match parse_body(body, T) {
            Err(EnvelopeError::Invalid { at, message }) => {
                assert_eq!(at, "event[1]");
                assert_eq!(message, "data: number out of range");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn batch_errors_name_the_index() {
        let body = br#"[{"type":"a","data":1},{"type":"a","data":1,"extra":true}]"#;
        match parse_body(body, T) {
            Err(EnvelopeError::Invalid { at, message }) => {
                assert_eq!(at, "event[1]");
                assert!(message.contains("unknown field `extra`"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rejects_bad_envelopes() {
        let bad: &[&[u8]] = &[
            b"",
            b"{",
            b"42",
            b"[]",
            br#"{"data":1}"#,
            br#"{"type":"a"}"#,
            br#"{"type":"Record.Create","data":1}"#,
            br#"{"type":"a","data":1,"occurred_at":"yesterday"}"#,
            br#"{"type":"a","data":1,"id":""}"#,
            br#"{"type":"a","data":1,"owner_id":5}"#,
            br#"[1]"#,
        ];
        for b in bad {
            assert!(parse_body(b, T).is_err(), "{}", String::from_utf8_lossy(b));
        }
        let many = format!(
            "[{}]",
            vec![r#"{"type":"a","data":1}"#; MAX_BATCH + 1].join(",")
        );
        assert_eq!(
            parse_body(many.as_bytes(), T),
            Err(EnvelopeError::TooMany(MAX_BATCH + 1))
        );
    }

    #[test]
    fn envelope_body_embeds_data_verbatim() {
        let body = br#"{"id":"e1","type":"a.b","owner_id":"o","data":{"x" : 1},"occurred_at":"2026-01-01T00:00:00Z"}"#;
        let ev = parse_body(body, T).unwrap().remove(0);
        assert_eq!(
            ev.envelope_json(),
            r#"{"id":"e1","type":"a.b","owner_id":"o","data":{"x" : 1},"occurred_at":"2026-01-01T00:00:00Z"}"#
        );
    }
}

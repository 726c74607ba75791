//! The event as weir keeps it: the producer's envelope, validated, with its id
//! and `occurred_at` filled in. `data` stays the producer's JSON text, so the
//! body a subscriber receives carries it byte for byte.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: String,
    pub event_type: String,
    pub owner_id: Option<String>,
    /// JSON text, exactly as the producer sent it.
    pub data: String,
    /// RFC 3339.
    pub occurred_at: String,
}

impl Event {
    /// The default body POSTed to subscribers: the envelope of SPEC §1,
    /// `{"id":…,"type":…,"owner_id":…,"data":…,"occurred_at":…}`, with
    /// `data` copied as the producer's text. This runs for every delivery
    /// (and again to tell whether a plugin changed the body), so it writes
    /// the text directly: `data` was checked when the event was accepted
    /// and is not parsed again.
    pub fn envelope_json(&self) -> String {
        let mut out = Vec::with_capacity(
            self.data.len() + self.id.len() + self.event_type.len() + self.occurred_at.len() + 96,
        );
        out.extend_from_slice(b"{\"id\":");
        json_string(&mut out, &self.id);
        out.extend_from_slice(b",\"type\":");
        json_string(&mut out, &self.event_type);
        out.extend_from_slice(b",\"owner_id\":");
        match &self.owner_id {
            Some(owner) => json_string(&mut out, owner),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"data\":");
        let data = self.data.trim();
        out.extend_from_slice(if data.is_empty() {
            b"null"
        } else {
            data.as_bytes()
        });
        out.extend_from_slice(b",\"occurred_at\":");
        json_string(&mut out, &self.occurred_at);
        out.push(b'}');
        String::from_utf8(out).expect("made of UTF-8 strings")
    }
}

/// `s` as a JSON string, escaped as serde_json escapes it.
fn json_string(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
}

/// Milliseconds since the Unix epoch: the one time unit of the store.
pub type Millis = i64;

/// Where server-side time comes from, so tests can move it (auto-disable
/// after days of failure, retries due in hours) without sleeping.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Millis;
}

/// The wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        now_millis()
    }
}

pub fn now_millis() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

pub fn rfc3339(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    /// The envelope as serde would write it: what subscribers have always
    /// been sent, so the direct writer must match it byte for byte.
    fn by_serde(e: &Event) -> String {
        #[derive(serde::Serialize)]
        struct Envelope<'a> {
            id: &'a str,
            #[serde(rename = "type")]
            event_type: &'a str,
            owner_id: Option<&'a str>,
            data: &'a RawValue,
            occurred_at: &'a str,
        }
        let data: &RawValue = serde_json::from_str(&e.data).unwrap();
        serde_json::to_string(&Envelope {
            id: &e.id,
            event_type: &e.event_type,
            owner_id: e.owner_id.as_deref(),
            data,
            occurred_at: &e.occurred_at,
        })
        .unwrap()
    }

    #[test]
    fn the_envelope_is_written_as_serde_writes_it() {
        let events = [
            Event {
                id: "evt_1".into(),
                event_type: "record.create".into(),
                owner_id: Some("org_\"q\"\\/\u{1}é😀".into()),
                data: r#"{"b": [1, 2.50, "x\u0041"],  "a":null}"#.into(),
                occurred_at: "2026-11-24T00:00:00Z".into(),
            },
            Event {
                id: "</script>\n\t".into(),
                event_type: "a.b".into(),
                owner_id: None,
                data: "\"text\"".into(),
                occurred_at: "2026-11-24T00:00:00.123+02:00".into(),
            },
            Event {
                id: "n".into(),
                event_type: "t".into(),
                owner_id: None,
                data: "null".into(),
                occurred_at: "x".into(),
            },
        ];
        for e in &events {
            assert_eq!(e.envelope_json(), by_serde(e));
            let back: serde_json::Value = serde_json::from_str(&e.envelope_json()).unwrap();
            assert_eq!(back["id"], e.id.as_str());
        }
    }
}

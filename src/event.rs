//! The event as weir keeps it: the producer's envelope, validated, with its id
//! and `occurred_at` filled in. `data` stays the producer's JSON text, so the
//! body a subscriber receives carries it byte for byte.

use serde::Serialize;
use serde_json::value::RawValue;

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

#[derive(Serialize)]
struct Envelope<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    owner_id: Option<&'a str>,
    data: &'a RawValue,
    occurred_at: &'a str,
}

impl Event {
    /// The default body POSTed to subscribers: the envelope of SPEC §1.
    pub fn envelope_json(&self) -> String {
        let data: &RawValue = serde_json::from_str(&self.data).unwrap_or(RawValue::NULL);
        serde_json::to_string(&Envelope {
            id: &self.id,
            event_type: &self.event_type,
            owner_id: self.owner_id.as_deref(),
            data,
            occurred_at: &self.occurred_at,
        })
        .expect("an envelope of strings and raw JSON always serialises")
    }
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

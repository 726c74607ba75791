//! Source plugins: a request caught at `POST /in/{source}` in, events out.
//!
//! A `map-request` call runs in the same sandbox as a filter call (fresh store,
//! deadline, memory limit, blocking thread, breaker, metrics). What comes
//! back is checked as the envelopes of `POST /v1/events` are, so a source
//! plugin cannot make an event a producer could not post; one bad event
//! fails the whole call, so a request yields all of its events or none.

use super::bindings::source as wit;
use super::host::{Inner, MAX_BODY, truncate};
use super::registry::Loaded;
use super::state::{HostState, Tags};
use super::{PluginError, Plugins};
use crate::ingest::envelope::{self, MAX_BATCH};

/// A request caught at `POST /in/{source}`, as a source plugin gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// Upper case: `POST`.
    pub method: String,
    /// The path without the query: `/in/github`.
    pub path: String,
    /// The query without its `?`, not decoded; empty when there is none.
    pub query: String,
    /// Names in lower case, one pair per value, as the caught request kept
    /// them: bytes that are not UTF-8 as U+FFFD, credentials as `***`.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Incoming {
    /// A request from the parts `http` (and so axum) hands over.
    pub fn from_http(
        method: &http::Method,
        uri: &http::Uri,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Incoming {
        Incoming {
            method: method.as_str().to_owned(),
            path: uri.path().to_owned(),
            query: uri.query().unwrap_or_default().to_owned(),
            headers: headers
                .iter()
                .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
                .collect(),
            body: body.to_vec(),
        }
    }
}

/// An event a source plugin made, checked: `event_type`, `id` and
/// `owner_id` pass the rules of posted events, `data` is JSON text whose
/// numbers fit a double (at most 4 MiB), and `occurred_at` is RFC 3339.
/// What is `None` is for the caller to fill in, as for a posted envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDraft {
    pub id: Option<String>,
    pub event_type: String,
    pub owner_id: Option<String>,
    /// JSON text, exactly as the plugin made it.
    pub data: String,
    pub occurred_at: Option<String>,
}

impl Plugins {
    /// Runs source plugin `plugin` (the version loaded now) on one caught
    /// request. `config` is the source's config for the plugin as JSON text;
    /// `source` tags the plugin's log lines and keys its breaker record.
    ///
    /// A plugin that is not loaded, is a filter plugin, fails in any way, or
    /// returns an event that fails the checks of [`EventDraft`] (or more
    /// than 1000 events) is an error, and no event of the request is kept.
    pub async fn map_request(
        &self,
        plugin: &str,
        req: &Incoming,
        config: &str,
        source: &str,
    ) -> Result<Vec<EventDraft>, PluginError> {
        self.map_request_capturing_logs(plugin, req, config, source)
            .await
            .0
    }

    /// Like [`Self::map_request`], also returning the call's log lines.
    pub async fn map_request_capturing_logs(
        &self,
        plugin: &str,
        req: &Incoming,
        config: &str,
        source: &str,
    ) -> (Result<Vec<EventDraft>, PluginError>, Vec<String>) {
        let registry = &self.inner.registry;
        let loaded = match registry.lookup(&registry.snapshot(), plugin) {
            Ok(loaded) => loaded,
            Err(e) => return (Err(e), Vec::new()),
        };
        if let Err(e) = loaded.source() {
            return (Err(e), Vec::new());
        }
        let job = MapJob {
            request: wit::Incoming {
                method: req.method.clone(),
                path: req.path.clone(),
                query: req.query.clone(),
                headers: req.headers.clone(),
                body: req.body.clone(),
            },
            config: config.to_owned(),
            source: source.to_owned(),
        };
        self.guarded(
            source,
            loaded,
            |_| "mapped",
            move |inner, loaded, budget| map_sync(inner, loaded, &job, budget),
        )
        .await
    }
}

struct MapJob {
    request: wit::Incoming,
    config: String,
    source: String,
}

fn map_sync(
    inner: &Inner,
    loaded: &Loaded,
    job: &MapJob,
    budget: Option<std::time::Duration>,
) -> (Result<Vec<EventDraft>, PluginError>, Vec<String>) {
    let pre = match loaded.source() {
        Ok(pre) => pre,
        Err(e) => return (Err(e), Vec::new()),
    };
    let tags = Tags::Source {
        source: job.source.clone(),
    };
    let (result, lines) = inner.sandboxed(loaded, tags, budget, |store| {
        let instance = pre.instantiate(&mut *store)?;
        instance.call_map_request(&mut *store, &job.request, &job.config)
    });
    (result.and_then(check_drafts), lines)
}

/// Checks every draft; the first that fails names itself by its index.
fn check_drafts(drafts: Vec<wit::EventDraft>) -> Result<Vec<EventDraft>, PluginError> {
    if drafts.len() > MAX_BATCH {
        return Err(PluginError::InvalidOutput(format!(
            "{} events, over the limit of {MAX_BATCH} per request",
            drafts.len()
        )));
    }
    drafts
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            check_draft(d).map_err(|why| PluginError::InvalidOutput(format!("event[{i}]: {why}")))
        })
        .collect()
}

fn check_draft(d: wit::EventDraft) -> Result<EventDraft, String> {
    // The message quotes the type: cap it, a plugin can make it huge.
    envelope::check_type(&d.event_type).map_err(|m| truncate(&m, 256))?;
    if let Some(id) = &d.id {
        envelope::check_id(id).map_err(|m| format!("id {m}"))?;
    }
    if let Some(owner) = &d.owner_id {
        envelope::check_id(owner).map_err(|m| format!("owner-id {m}"))?;
    }
    if d.data.len() > MAX_BODY {
        return Err(format!(
            "data of {} bytes is over the {MAX_BODY} byte limit",
            d.data.len()
        ));
    }
    crate::json::check_interoperable(&d.data)
        .map_err(|e| format!("data is not valid JSON ({e})"))?;
    if let Some(t) = &d.occurred_at {
        chrono::DateTime::parse_from_rfc3339(t)
            .map_err(|e| format!("occurred-at {:?} is not RFC 3339 ({e})", truncate(t, 64)))?;
    }
    Ok(EventDraft {
        id: d.id,
        event_type: d.event_type,
        owner_id: d.owner_id,
        data: d.data,
        occurred_at: d.occurred_at,
    })
}

impl wit::weir::plugin::inbound::Host for HostState {}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(event_type: &str, data: &str) -> wit::EventDraft {
        wit::EventDraft {
            id: None,
            event_type: event_type.into(),
            owner_id: None,
            data: data.into(),
            occurred_at: None,
        }
    }

    fn invalid(drafts: Vec<wit::EventDraft>) -> String {
        match check_drafts(drafts) {
            Err(PluginError::InvalidOutput(why)) => why,
            other => panic!("expected InvalidOutput, got {other:?}"),
        }
    }

    #[test]
    fn good_drafts_pass_unchanged() {
        let mut d = draft("commit.push", r#"{"a": [1, 2.5, null]}"#);
        d.id = Some("abc:1".into());
        d.owner_id = Some("org_1".into());
        d.occurred_at = Some("2026-01-02T03:04:05Z".into());
        let out = check_drafts(vec![d, draft("x.y", "7")]).unwrap();
        assert_eq!(
            out[0],
            EventDraft {
                id: Some("abc:1".into()),
                event_type: "commit.push".into(),
                owner_id: Some("org_1".into()),
                data: r#"{"a": [1, 2.5, null]}"#.into(),
                occurred_at: Some("2026-01-02T03:04:05Z".into()),
            }
        );
        assert_eq!(out[1].data, "7");
        assert_eq!(check_drafts(Vec::new()).unwrap(), Vec::new());
    }

    #[test]
    fn the_first_bad_draft_is_named_by_index() {
        let drafts = vec![
            draft("a.b", "{}"),
            draft("a.b", "{}"),
            draft("Bad Type", "{}"),
        ];
        assert_eq!(
            invalid(drafts),
            r#"event[2]: type "Bad Type" must be 1..=128 characters of [a-z0-9_.-]"#
        );
        assert!(
            invalid(vec![draft("a.b", "{not json")])
                .starts_with("event[0]: data is not valid JSON")
        );
        assert!(
            invalid(vec![draft("a.b", "1e999")]).starts_with("event[0]: data is not valid JSON")
        );
        let mut d = draft("a.b", "{}");
        d.id = Some(String::new());
        assert_eq!(invalid(vec![d]), "event[0]: id must be 1..=255 characters");
        let mut d = draft("a.b", "{}");
        d.owner_id = Some("a\nb".into());
        assert_eq!(
            invalid(vec![d]),
            "event[0]: owner-id must not contain control characters"
        );
        let mut d = draft("a.b", "{}");
        d.occurred_at = Some("yesterday".into());
        assert!(
            invalid(vec![d]).starts_with(r#"event[0]: occurred-at "yesterday" is not RFC 3339"#)
        );
    }

    #[test]
    fn output_is_bounded() {
        let many = vec![draft("a.b", "1"); MAX_BATCH + 1];
        assert_eq!(
            invalid(many),
            "1001 events, over the limit of 1000 per request"
        );
        assert_eq!(
            check_drafts(vec![draft("a.b", "1"); MAX_BATCH])
                .unwrap()
                .len(),
            MAX_BATCH
        );
        let big = format!("\"{}\"", "x".repeat(MAX_BODY));
        assert!(invalid(vec![draft("a.b", &big)]).contains("over the 4194304 byte limit"));
        let long_type = "x".repeat(100_000);
        assert!(invalid(vec![draft(&long_type, "1")]).len() < 300);
    }

    #[test]
    fn incoming_from_http_keeps_bytes_and_splits_the_uri() {
        let mut headers = http::HeaderMap::new();
        headers.append("X-GitHub-Event", "push".parse().unwrap());
        headers.append("x-multi", "a".parse().unwrap());
        headers.append("x-multi", "b".parse().unwrap());
        headers.append("x-raw", http::HeaderValue::from_bytes(b"caf\xe9").unwrap());
        let uri: http::Uri = "/in/github?a=1&b=%20".parse().unwrap();
        let req = Incoming::from_http(&http::Method::POST, &uri, &headers, b"{}");
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/in/github");
        assert_eq!(req.query, "a=1&b=%20");
        assert_eq!(
            req.headers,
            vec![
                ("x-github-event".to_owned(), b"push".to_vec()),
                ("x-multi".to_owned(), b"a".to_vec()),
                ("x-multi".to_owned(), b"b".to_vec()),
                ("x-raw".to_owned(), b"caf\xe9".to_vec()),
            ]
        );
        assert_eq!(req.body, b"{}");
    }
}

//! `app_scope`: deliver only the events of some apps (forms).
//!
//! Config: `{"form_ids": ["a1b2", ...], "owner_ids": ["org_42", ...]}`
//! (`owner_ids` optional). A `record.*` event is in scope when its
//! `data.form_id` is listed, a `form.*` event when its `data.id` is; with
//! `owner_ids`, the event's `owner_id` must be listed too. Everything else is
//! dropped with the reason. The request passes through unchanged.

use serde::Deserialize;

wit_bindgen::generate!({ path: "../../wit", world: "filter" });

struct AppScope;

#[derive(Deserialize)]
struct Config {
    form_ids: Vec<String>,
    #[serde(default)]
    owner_ids: Option<Vec<String>>,
}

/// Only the two keys this plugin reads; serde skips the rest of `data`.
#[derive(Deserialize)]
struct Data<'a> {
    #[serde(borrow, default)]
    form_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    id: Option<std::borrow::Cow<'a, str>>,
}

impl Guest for AppScope {
    fn handle(event: Event, request: Request, config: String) -> Result<Verdict, String> {
        let config: Config = serde_json::from_str(&config)
            .map_err(|e| format!("config must be {{\"form_ids\": [..]}}: {e}"))?;
        if let Some(owners) = &config.owner_ids {
            let owner = event.owner_id.as_deref().unwrap_or("");
            if !owners.iter().any(|o| o == owner) {
                return Ok(Verdict::Drop(format!("owner {owner:?} not in scope")));
            }
        }
        let resource = event.event_type.split('.').next().unwrap_or("");
        let data: Data = match serde_json::from_str(&event.data) {
            Ok(d) => d,
            Err(_) => return Ok(Verdict::Drop("data is not an object".into())),
        };
        let form = match resource {
            "record" => data.form_id,
            "form" => data.id,
            _ => return Ok(Verdict::Drop(format!("{} events belong to no form", event.event_type))),
        };
        match form {
            Some(f) if config.form_ids.iter().any(|id| *id == *f) => Ok(Verdict::Deliver(request)),
            Some(f) => Ok(Verdict::Drop(format!("form {f} not in scope"))),
            None => Ok(Verdict::Drop("event names no form".into())),
        }
    }
}

export!(AppScope);

//! `app_scope`: delivers only the events of the forms (the "apps") a webhook
//! is scoped to, and drops everything else with the reason.
//!
//! Config:
//! - `form_ids` (required): a non-empty list of form ids in scope. A
//!   `record.*` event is in scope when its `data.form_id` is listed, a
//!   `form.*` event when its `data.id` is.
//! - `owner_ids` (optional): a list of owner ids; when given, the event's
//!   `owner_id` must be listed too.
//!
//! In-scope events are delivered with the request unchanged. Other events,
//! including every type that is neither `record.*` nor `form.*`, are dropped
//! with a reason such as `form a1b2 not in scope`.
//! A config that is not JSON, lacks `form_ids` or has an unknown key is an
//! `err`. This runs on every event, so it reads only the two fields it needs
//! from `data`, borrowing them from the JSON text instead of building a tree.

use std::borrow::Cow;

use serde::Deserialize;

wit_bindgen::generate!({ path: "../../wit", world: "filter" });

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config<'a> {
    #[serde(borrow)]
    form_ids: Vec<Cow<'a, str>>,
    #[serde(borrow, default)]
    owner_ids: Option<Vec<Cow<'a, str>>>,
}

/// The two fields of `data` that can name the form; the rest is skipped
/// without being kept.
#[derive(Deserialize)]
struct Data<'a> {
    #[serde(borrow, default)]
    form_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
}

/// Which field of `data` names the form, by event resource.
#[derive(Clone, Copy)]
enum FormKey {
    /// `record.*`: the record's `data.form_id`.
    FormId,
    /// `form.*`: the form's own `data.id`.
    Id,
}

struct AppScope;

impl Guest for AppScope {
    fn handle(event: Event, request: Request, config: String) -> Result<Verdict, String> {
        let config = parse_config(&config)?;
        let key = match event.event_type.split_once('.') {
            Some(("record", _)) => FormKey::FormId,
            Some(("form", _)) => FormKey::Id,
            _ => {
                return dropped(format!("event type {} is neither record.* nor form.*", event.event_type));
            }
        };
        if let Some(owners) = &config.owner_ids {
            match event.owner_id.as_deref() {
                Some(owner) if owners.iter().any(|o| o == owner) => {}
                Some(owner) => return dropped(format!("owner_id {owner} not in scope")),
                None => return dropped("event has no owner_id and owner_ids is set".into()),
            }
        }
        let form = match form_of(&event.data, key) {
            Ok(form) => form,
            Err(reason) => return dropped(reason),
        };
        if config.form_ids.contains(&form) {
            Ok(Verdict::Deliver(request))
        } else {
            dropped(format!("form {form} not in scope"))
        }
    }
}

fn dropped(reason: String) -> Result<Verdict, String> {
    Ok(Verdict::Drop(reason))
}

fn parse_config(text: &str) -> Result<Config<'_>, String> {
    let config: Config = serde_json::from_str(text).map_err(|e| format!("app_scope config: {e}"))?;
    if config.form_ids.is_empty() {
        return Err("app_scope config: form_ids is empty, so every event would be dropped".into());
    }
    Ok(config)
}

/// The form id the event belongs to, or why there is none.
fn form_of(data: &str, key: FormKey) -> Result<Cow<'_, str>, String> {
    let field = match key {
        FormKey::FormId => "data.form_id",
        FormKey::Id => "data.id",
    };
    // A struct also deserializes from a JSON array; only an object will do.
    if !data.trim_start().starts_with('{') {
        return Err(format!("data is not an object, so it has no {field}"));
    }
    let data: Data = serde_json::from_str(data).map_err(|e| format!("cannot read {field}: {e}"))?;
    let form = match key {
        FormKey::FormId => data.form_id,
        FormKey::Id => data.id,
    };
    form.ok_or_else(|| format!("event has no {field}"))
}

export!(AppScope);

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_type: &str, owner: Option<&str>, data: &str) -> Event {
        Event {
            id: "evt_1".into(),
            event_type: event_type.into(),
            owner_id: owner.map(Into::into),
            data: data.into(),
            occurred_at: "2026-11-20T14:03:11Z".into(),
        }
    }

    fn run(event: Event, config: &str) -> Result<Result<(), String>, String> {
        let request = Request { body: "{\"b\":1}".into(), headers: vec![("x-a".into(), "1".into())] };
        match AppScope::handle(event, request.clone(), config.into())? {
            Verdict::Deliver(r) => {
                assert_eq!((r.body, r.headers), (request.body, request.headers), "request must pass unchanged");
                Ok(Ok(()))
            }
            Verdict::Drop(reason) => Ok(Err(reason)),
        }
    }

    const RECORD: &str = r#"{"id":"r1","form_values":{"a":[1,{"b":"}"}]},"form_id":"a1b2","status":"x"}"#;

    #[test]
    fn records_and_forms_in_scope_are_delivered() {
        let config = r#"{"form_ids": ["zzz", "a1b2"]}"#;
        assert_eq!(run(event("record.update", None, RECORD), config), Ok(Ok(())));
        assert_eq!(run(event("form.create", None, r#"{"id": "a1b2", "form_id": "no"}"#), config), Ok(Ok(())));
    }

    #[test]
    fn out_of_scope_events_are_dropped_with_the_reason() {
        let config = r#"{"form_ids": ["zzz"]}"#;
        let drop = |e| run(e, config).unwrap().unwrap_err();
        assert_eq!(drop(event("record.create", None, RECORD)), "form a1b2 not in scope");
        assert_eq!(drop(event("form.delete", None, r#"{"id":"a1b2"}"#)), "form a1b2 not in scope");
        assert_eq!(
            drop(event("choice_list.update", None, "{}")),
            "event type choice_list.update is neither record.* nor form.*"
        );
        assert_eq!(drop(event("record.create", None, r#"{"id":"r1"}"#)), "event has no data.form_id");
        assert_eq!(drop(event("record.create", None, "[1]")), "data is not an object, so it has no data.form_id");
        assert!(
            drop(event("record.create", None, r#"{"form_id": 7}"#))
                .starts_with("cannot read data.form_id: invalid type")
        );
    }

    #[test]
    fn owner_ids_narrow_the_scope() {
        let config = r#"{"form_ids": ["a1b2"], "owner_ids": ["org_1"]}"#;
        assert_eq!(run(event("record.create", Some("org_1"), RECORD), config), Ok(Ok(())));
        assert_eq!(
            run(event("record.create", Some("org_2"), RECORD), config),
            Ok(Err("owner_id org_2 not in scope".into()))
        );
        assert!(run(event("record.create", None, RECORD), config).unwrap().is_err());
    }

    #[test]
    fn escaped_ids_compare_by_value() {
        let data = r#"{"form_id": "a\u0031b2"}"#;
        assert_eq!(run(event("record.create", None, data), r#"{"form_ids": ["a1b2"]}"#), Ok(Ok(())));
    }

    #[test]
    fn bad_config_is_an_error() {
        let e = || event("record.create", None, RECORD);
        for config in ["{not json", "{}", r#"{"form_ids": []}"#, r#"{"form_id": ["a1b2"]}"#, r#"{"form_ids": "a1b2"}"#]
        {
            let err = run(e(), config).unwrap_err();
            assert!(err.starts_with("app_scope config: "), "{config}: {err}");
        }
    }
}

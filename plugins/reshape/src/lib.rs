//! `reshape`: build a new JSON body from the event.
//!
//! Config (every key optional):
//! ```json
//! {
//!   "pick":   ["id", "type", "data.status"],
//!   "rename": {"data.status": "state"},
//!   "fields": {"text": "New {type} in form {data.form_id} by {data.created_by}", "source": "weir"},
//!   "content_type": "application/json"
//! }
//! ```
//! Paths are dotted, resolved against the event envelope: `id`, `type`,
//! `owner_id`, `occurred_at` and `data.…`. The output is an object built in
//! this order: each `pick`ed path, under its last segment or its `rename`;
//! then each of `fields`, where strings are templates (`{path}` is replaced by
//! the value there, strings bare, other values as JSON; a missing path gives
//! an empty string; `{{` and `}}` are literal braces) and other JSON values
//! are copied as they are. `content_type` sets that header.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

wit_bindgen::generate!({ path: "../../wit", world: "filter" });

struct Reshape;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    pick: Vec<String>,
    #[serde(default)]
    rename: BTreeMap<String, String>,
    #[serde(default)]
    fields: Map<String, Value>,
    #[serde(default)]
    content_type: Option<String>,
}

impl Guest for Reshape {
    fn handle(event: Event, mut request: Request, config: String) -> Result<Verdict, String> {
        let config: Config = serde_json::from_str(&config).map_err(|e| format!("bad reshape config: {e}"))?;
        let data: Value = serde_json::from_str(&event.data).map_err(|e| format!("event data is not JSON: {e}"))?;
        let envelope = serde_json::json!({
            "id": event.id,
            "type": event.event_type,
            "owner_id": event.owner_id,
            "occurred_at": event.occurred_at,
            "data": data,
        });
        let mut out = Map::new();
        for path in &config.pick {
            let key = config
                .rename
                .get(path)
                .cloned()
                .unwrap_or_else(|| path.rsplit('.').next().unwrap_or(path).to_owned());
            out.insert(key, lookup(&envelope, path).cloned().unwrap_or(Value::Null));
        }
        for (key, value) in &config.fields {
            let value = match value {
                Value::String(template) => Value::String(render(template, &envelope)?),
                other => other.clone(),
            };
            out.insert(key.clone(), value);
        }
        request.body = Value::Object(out).to_string();
        if let Some(ct) = config.content_type {
            request.headers.retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
            request.headers.push(("content-type".into(), ct));
        }
        Ok(Verdict::Deliver(request))
    }
}

fn lookup<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(root, |v, key| match v {
        Value::Object(m) => m.get(key),
        Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

fn render(template: &str, root: &Value) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
        } else if tail.starts_with('}') {
            return Err(format!("template {template:?} has an unmatched `}}`"));
        } else {
            let end = tail.find('}').ok_or_else(|| format!("template {template:?} has an unclosed `{{`"))?;
            match lookup(root, tail[1..end].trim()) {
                Some(Value::String(s)) => out.push_str(s),
                Some(Value::Null) | None => {}
                Some(v) => out.push_str(&v.to_string()),
            }
            rest = &tail[end + 1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

export!(Reshape);

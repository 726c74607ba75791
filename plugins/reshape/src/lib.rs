//! `reshape`: replaces the request body with a document built from the
//! event, for subscribers that expect their own format (a chat message, a
//! smaller payload, renamed fields).
//!
//! Paths read the event envelope, the same object as weir's default body:
//! `id`, `type`, `owner_id`, `occurred_at`, and `data.*` (dotted keys; a
//! number indexes an array: `data.choices.0.label`). Templates are JSON values
//! whose strings may hold placeholders: `{path}` is replaced by the value
//! there (strings as they are, other values as compact JSON, missing or null
//! as nothing), `{path|text}` uses `text` when it is missing or null, `{{`
//! and `}}` are literal braces. A string that is exactly one placeholder,
//! like `"{data.version}"`, becomes the value itself with its JSON type (null
//! when missing).
//!
//! Config keys, applied in this order, each later one overwriting what an
//! earlier one put at the same place:
//!
//! 1. `template`: the starting document, rendered (default `{}`). Any JSON
//!    value; a string makes a text body together with `content_type`.
//! 2. `pick`: paths copied to the same path in the output (`data.status`
//!    gives `{"data": {"status": ...}}`); missing ones are left out.
//! 3. `rename`: event path to output path (`{"data.status": "state"}`),
//!    copying the value under a new name; missing ones are left out.
//! 4. `fields`: output path to template (`{"text": "New {type}"}`), each
//!    rendered and set.
//! 5. `content_type`: sets the `content-type` header. When it is not a JSON
//!    type and the output is a string, that string is the body as it is
//!    (`text/plain`); otherwise the body is the output as JSON.
//!
//! Output paths are dotted too, always naming object keys. At least one of
//! `template`, `pick`, `rename` and `fields` is required; with the last three,
//! a `template` must be an object. Headers the request already has are kept.
//! A config mistake (unknown key, unknown path root, bad placeholder) is an
//! `err` naming the place.

mod path;
mod template;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use path::Path;
use template::Node;

wit_bindgen::generate!({ path: "../../wit", world: "filter" });

/// What a path may start with: the fields of the envelope.
const ROOTS: [&str; 5] = ["id", "type", "owner_id", "occurred_at", "data"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    template: Option<Value>,
    #[serde(default)]
    pick: Vec<String>,
    #[serde(default)]
    rename: Map<String, Value>,
    #[serde(default)]
    fields: Map<String, Value>,
    content_type: Option<String>,
}

/// The config, compiled and checked.
struct Spec {
    template: Option<Node>,
    pick: Vec<Path>,
    rename: Vec<(Path, Path)>,
    fields: Vec<(Path, Node)>,
    content_type: Option<String>,
}

impl Spec {
    fn parse(text: &str) -> Result<Spec, String> {
        let raw: RawConfig = serde_json::from_str(text).map_err(|e| format!("reshape config: {e}"))?;
        Spec::compile(raw).map_err(|e| format!("reshape config: {e}"))
    }

    fn compile(raw: RawConfig) -> Result<Spec, String> {
        if raw.template.is_none() && raw.pick.is_empty() && raw.rename.is_empty() && raw.fields.is_empty() {
            return Err("give at least one of template, pick, rename and fields".into());
        }
        let template = raw.template.map(|t| Node::compile(t, "template", &check_root)).transpose()?;
        let pick = raw.pick.iter().map(|p| source(p, "pick")).collect::<Result<Vec<_>, _>>()?;
        let mut rename = Vec::with_capacity(raw.rename.len());
        for (from, to) in raw.rename {
            let Value::String(to) = to else {
                return Err(format!("rename.{from}: the new name must be a string"));
            };
            let to = Path::parse(&to).map_err(|e| format!("rename.{from}: {e}"))?;
            rename.push((source(&from, "rename")?, to));
        }
        let mut fields = Vec::with_capacity(raw.fields.len());
        for (to, value) in raw.fields {
            let at = format!("fields.{to}");
            let to = Path::parse(&to).map_err(|e| format!("{at}: {e}"))?;
            fields.push((to, Node::compile(value, &at, &check_root)?));
        }
        let adds = !pick.is_empty() || !rename.is_empty() || !fields.is_empty();
        if adds && template.as_ref().is_some_and(|t| !t.is_object()) {
            return Err("with pick, rename or fields, template must be an object".into());
        }
        if let Some(ct) = &raw.content_type
            && (ct.trim().is_empty() || ct.contains(['\r', '\n', '\0']))
        {
            return Err(format!("content_type {ct:?} is not a valid header value"));
        }
        Ok(Spec { template, pick, rename, fields, content_type: raw.content_type })
    }

    /// The output document for one event.
    fn build(&self, envelope: &Value) -> Value {
        let mut out = match &self.template {
            Some(t) => t.render(envelope),
            None => Value::Object(Map::new()),
        };
        if let Value::Object(map) = &mut out {
            for path in &self.pick {
                if let Some(v) = path.get(envelope) {
                    path.set(map, v.clone());
                }
            }
            for (from, to) in &self.rename {
                if let Some(v) = from.get(envelope) {
                    to.set(map, v.clone());
                }
            }
            for (to, node) in &self.fields {
                to.set(map, node.render(envelope));
            }
        }
        out
    }

    /// The body text for `output`: JSON, or a plain string for non-JSON types.
    fn body(&self, output: Value) -> String {
        match (&self.content_type, output) {
            (Some(ct), Value::String(s)) if !ct.to_ascii_lowercase().contains("json") => s,
            (_, output) => output.to_string(),
        }
    }
}

fn source(text: &str, at: &str) -> Result<Path, String> {
    let path = Path::parse(text).map_err(|e| format!("{at}: {e}"))?;
    check_root(&path).map_err(|e| format!("{at}: {e}"))?;
    Ok(path)
}

fn check_root(path: &Path) -> Result<(), String> {
    if ROOTS.contains(&path.root()) {
        Ok(())
    } else {
        Err(format!("unknown field {:?}; paths start with one of {}", path.root(), ROOTS.join(", ")))
    }
}

/// The envelope paths read: weir's default body, as a JSON value.
fn envelope(event: &Event) -> Value {
    // weir only accepts events whose data is JSON; the fallback is for safety.
    let data = serde_json::from_str(&event.data).unwrap_or_else(|_| Value::String(event.data.clone()));
    json!({
        "id": event.id,
        "type": event.event_type,
        "owner_id": event.owner_id,
        "occurred_at": event.occurred_at,
        "data": data,
    })
}

struct Reshape;

impl Guest for Reshape {
    fn handle(event: Event, mut request: Request, config: String) -> Result<Verdict, String> {
        let spec = Spec::parse(&config)?;
        let output = spec.build(&envelope(&event));
        request.body = spec.body(output);
        if let Some(ct) = spec.content_type {
            request.headers.retain(|(name, _)| !name.eq_ignore_ascii_case("content-type"));
            request.headers.push(("content-type".into(), ct));
        }
        Ok(Verdict::Deliver(request))
    }
}

export!(Reshape);

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Value {
        json!({
            "id": "evt_1", "type": "record.create", "owner_id": "org_42", "occurred_at": "2026-11-20T14:03:11Z",
            "data": {"form_id": "a1b2", "status": "needs_review", "created_by": "Dana Field", "version": 1}
        })
    }

    fn build(config: Value) -> Result<String, String> {
        let spec = Spec::parse(&config.to_string())?;
        Ok(spec.body(spec.build(&record())))
    }

    #[test]
    fn template_pick_and_rename_in_order() {
        let body = build(json!({
            "template": {"text": "New {type} in form {data.form_id} by {data.created_by}", "source": "weir"},
            "pick": ["id", "type", "data.version"],
            "rename": {"data.status": "state", "data.missing": "gone"}
        }))
        .unwrap();
        let want = r#"{"text":"New record.create in form a1b2 by Dana Field","source":"weir","id":"evt_1","type":"record.create","data":{"version":1},"state":"needs_review"}"#;
        assert_eq!(body, want);
    }

    #[test]
    fn fields_come_last_and_win() {
        let body = build(json!({
            "pick": ["id", "data.status"],
            "fields": {"text": "{data.created_by} ({data.version})", "n": 1, "data.status": "{data.status|?}!", "v": "{data.version}"}
        }))
        .unwrap();
        assert_eq!(body, r#"{"id":"evt_1","data":{"status":"needs_review!"},"text":"Dana Field (1)","n":1,"v":1}"#);
    }

    #[test]
    fn plain_text_bodies_for_non_json_types() {
        let text = build(json!({"template": "{data.created_by} did {type}", "content_type": "text/plain"}));
        assert_eq!(text.unwrap(), "Dana Field did record.create");
        let json = build(json!({"template": "{data.created_by}", "content_type": "application/json"}));
        assert_eq!(json.unwrap(), r#""Dana Field""#);
    }

    #[test]
    fn config_mistakes_are_errors() {
        for (config, needle) in [
            (json!({}), "at least one"),
            (json!({"pick": ["event_type"]}), "unknown field \"event_type\""),
            (json!({"template": "{typ}"}), "template: unknown field \"typ\""),
            (json!({"template": "x", "pick": ["id"]}), "must be an object"),
            (json!({"template": [], "fields": {"a": 1}}), "must be an object"),
            (json!({"fields": {"a": "{dat.x}"}}), "fields.a: unknown field \"dat\""),
            (json!({"fields": {"a..b": 1}}), "fields.a..b: path"),
            (json!({"rename": {"data.status": 1}}), "rename.data.status"),
            (json!({"pick": ["id"], "extra": 1}), "unknown field `extra`"),
            (json!({"pick": ["id"], "content_type": "a\nb"}), "content_type"),
        ] {
            let err = build(config.clone()).unwrap_err();
            assert!(err.starts_with("reshape config: ") && err.contains(needle), "{config}: {err}");
        }
        assert!(Spec::parse("{not json").is_err());
    }
}

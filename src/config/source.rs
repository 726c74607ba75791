//! One inbound source, as written and as validated: [`SourceSpec`] is the
//! shape of a `[[sources]]` table and of the body of `POST /v1/sources`, and
//! [`validate`] is the one function both go through. Problems name the key
//! they are about; the caller says where that key was written.

use std::path::Path;

use axum::http::{HeaderName, Method};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::webhook::{Origin, Problem, id_ok};
use crate::inbound::verify::{HmacSpec, Scheme};

/// Default `tolerance_secs`: how far a signed timestamp may be from the
/// server clock.
pub const DEFAULT_TOLERANCE_SECS: u64 = 300;
const MAX_TOLERANCE_SECS: u64 = 7 * 86_400;
const MAX_SECRETS: usize = 10;
const MAX_SECRET_BYTES: usize = 1024;
const MAX_METHODS: usize = 8;

/// A source as written: every key of a `[[sources]]` table. Its `Debug`
/// leaves the secrets out.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// `[a-z0-9_-]{1,64}`, the last segment of `/in/{id}`; generated
    /// (`src_…`) when an API create leaves it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// How requests prove their sender: `standard-webhooks`, `github`,
    /// `stripe`, `shopify`, `slack`, `hmac`, `basic`, `bearer` or `none`.
    #[serde(default)]
    pub verify: String,
    /// The sender's signing secrets (several during a rotation: any one
    /// verifies). `basic` takes `user:password`, `bearer` the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<Vec<String>>,
    /// For `verify = "hmac"`: which header, algorithm and encoding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac: Option<HmacSpec>,
    /// For schemes with a signed timestamp; default 300.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance_secs: Option<u64>,
    /// Where an event's type comes from: `header:<name>`, `json:<pointer>`
    /// or `literal:<type>`. Defaults per scheme (GitHub's
    /// `X-GitHub-Event`, Stripe's `/type`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_from: Option<String>,
    /// Where an event's id comes from, the same way; it is also how a
    /// sender's retry of one delivery is recognised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_from: Option<String>,
    /// Given to every event from this source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    /// A source plugin that turns each request into events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<SourcePluginSpec>,
    /// Largest body accepted; default `[server] max_body_bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<usize>,
    /// Methods accepted; default `["POST"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl std::fmt::Debug for SourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceSpec")
            .field("id", &self.id)
            .field("verify", &self.verify)
            .field(
                "secrets",
                &format_args!("[{} hidden]", self.secrets.as_ref().map_or(0, Vec::len)),
            )
            .field("type_from", &self.type_from)
            .field("id_from", &self.id_from)
            .field("owner_id", &self.owner_id)
            .field("plugin", &self.plugin)
            .finish_non_exhaustive()
    }
}

/// The source plugin of a source, as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourcePluginSpec {
    /// `<plugins_dir>/<name>.wasm`, a component of the `source` world.
    pub name: String,
    /// Handed to the plugin as JSON text.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub config: Map<String, Value>,
}

/// Where a value of the request comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Extract {
    Header(HeaderName),
    /// An RFC 6901 pointer into the JSON body.
    Json(String),
    Literal(String),
}

impl Extract {
    pub fn parse(text: &str) -> Result<Extract, String> {
        let (kind, rest) = text.split_once(':').ok_or_else(|| {
            format!("{text:?} must be header:<name>, json:<pointer> or literal:<value>")
        })?;
        match kind {
            "header" => HeaderName::try_from(rest)
                .map(Extract::Header)
                .map_err(|_| format!("{rest:?} is not a header name")),
            "json" if rest.is_empty() || rest.starts_with('/') => Ok(Extract::Json(rest.into())),
            "json" => Err(format!(
                "{rest:?} is not a JSON pointer (it starts with '/', like \"/type\")"
            )),
            "literal" if !rest.is_empty() && rest.len() <= 255 => Ok(Extract::Literal(rest.into())),
            "literal" => Err("a literal is 1..=255 characters".into()),
            _ => Err(format!(
                "{kind:?} is not a place: use header:<name>, json:<pointer> or literal:<value>"
            )),
        }
    }

    /// The value in a request, if it is there and text.
    pub fn get(&self, headers: &axum::http::HeaderMap, body: Option<&Value>) -> Option<String> {
        match self {
            Extract::Header(name) => headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            Extract::Json(pointer) => match body?.pointer(pointer)? {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            },
            Extract::Literal(v) => Some(v.clone()),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Extract::Header(h) => format!("header:{h}"),
            Extract::Json(p) => format!("json:{p}"),
            Extract::Literal(v) => format!("literal:{v}"),
        }
    }
}

/// A validated source. Its `Debug` leaves the secrets out.
#[derive(Clone, PartialEq)]
pub struct InboundSource {
    pub id: String,
    pub origin: super::Source,
    pub scheme: Scheme,
    pub secrets: Vec<String>,
    pub tolerance_secs: u64,
    pub type_from: Option<Extract>,
    pub id_from: Option<Extract>,
    pub owner_id: Option<String>,
    pub plugin: Option<SourcePlugin>,
    pub max_body_bytes: usize,
    pub methods: Vec<Method>,
    pub description: String,
    pub created_at: Option<crate::event::Millis>,
}

impl std::fmt::Debug for InboundSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundSource")
            .field("id", &self.id)
            .field("origin", &self.origin)
            .field("scheme", &self.scheme.name())
            .field("secrets", &format_args!("[{} hidden]", self.secrets.len()))
            .field("type_from", &self.type_from)
            .field("id_from", &self.id_from)
            .field("owner_id", &self.owner_id)
            .field("plugin", &self.plugin)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SourcePlugin {
    pub name: String,
    pub config_json: String,
}

/// What validation needs besides the spec.
pub struct Context<'a> {
    pub plugins_dir: &'a Path,
    pub max_body_bytes: usize,
    pub origin: Origin,
}

/// The places a scheme's senders put the type and the delivery id, for a
/// source that does not say.
fn defaults(scheme: &Scheme) -> (Option<&'static str>, Option<&'static str>) {
    match scheme {
        Scheme::Github => (
            Some("header:X-GitHub-Event"),
            Some("header:X-GitHub-Delivery"),
        ),
        Scheme::Stripe => (Some("json:/type"), Some("json:/id")),
        Scheme::Shopify => (
            Some("header:X-Shopify-Topic"),
            Some("header:X-Shopify-Webhook-Id"),
        ),
        Scheme::StandardWebhooks => (Some("json:/type"), Some("header:webhook-id")),
        Scheme::Slack => (Some("json:/event/type"), Some("json:/event_id")),
        _ => (None, None),
    }
}

/// Validates `spec` into an [`InboundSource`], or lists every problem.
pub fn validate(spec: &SourceSpec, cx: &Context<'_>) -> Result<InboundSource, Vec<Problem>> {
    let mut p: Vec<Problem> = Vec::new();
    let mut add = |key: &str, message: String| {
        p.push(Problem {
            key: key.into(),
            message,
        })
    };
    let id = spec.id.clone().unwrap_or_default();
    if !id_ok(&id) {
        add("id", "must be 1..=64 chars of [a-z0-9_-]".into());
    }
    let scheme = match Scheme::parse(&spec.verify, spec.hmac.clone()) {
        Ok(s) => Some(s),
        Err(e) => {
            add(
                if spec.verify.is_empty() || spec.hmac.is_none() {
                    "verify"
                } else {
                    "hmac"
                },
                e,
            );
            None
        }
    };
    let secrets = spec.secrets.clone().unwrap_or_default();
    if secrets.len() > MAX_SECRETS {
        add(
            "secrets",
            format!("must list at most {MAX_SECRETS} secrets"),
        );
    }
    if let Some(scheme) = &scheme {
        if scheme.needs_secrets() && secrets.is_empty() {
            add(
                "secrets",
                format!("verify = {:?} needs at least one secret", scheme.name()),
            );
        }
        if !scheme.needs_secrets() && !secrets.is_empty() {
            add("secrets", "verify = \"none\" takes no secrets".into());
        }
        let checked = if scheme.needs_secrets() {
            &secrets[..]
        } else {
            &[]
        };
        for (i, s) in checked.iter().enumerate() {
            // Messages never repeat the secret itself.
            if s.len() > MAX_SECRET_BYTES {
                add(
                    &format!("secrets[{i}]"),
                    format!("must be at most {MAX_SECRET_BYTES} bytes"),
                );
            } else if let Err(e) = scheme.check_secret(s) {
                add(&format!("secrets[{i}]"), e);
            }
        }
    }
    let tolerance_secs = spec.tolerance_secs.unwrap_or(DEFAULT_TOLERANCE_SECS);
    if !(1..=MAX_TOLERANCE_SECS).contains(&tolerance_secs) {
        add(
            "tolerance_secs",
            format!("must be 1..={MAX_TOLERANCE_SECS}"),
        );
    }
    let (default_type, default_id) = scheme.as_ref().map_or((None, None), defaults);
    let mut place = |key: &str, given: &Option<String>, default: Option<&str>| {
        let text = given.as_deref().or(default)?;
        match Extract::parse(text) {
            Ok(e) => Some(e),
            Err(e) => {
                add(key, e);
                None
            }
        }
    };
    let type_from = place("type_from", &spec.type_from, default_type);
    let id_from = place("id_from", &spec.id_from, default_id);
    if let Some(Extract::Literal(_)) = &id_from {
        // Every event would get one id, and dedup would keep only the first.
        add(
            "id_from",
            "cannot be a literal: each request needs its own id (header:<name> or json:<pointer>, or leave it out)".into(),
        );
    }
    if let Some(Extract::Literal(t)) = &type_from
        && let Err(e) = crate::ingest::envelope::check_type(t)
    {
        add("type_from", format!("the literal type {e}"));
    }
    if spec.plugin.is_none() && spec.type_from.is_none() && type_from.is_none() && scheme.is_some()
    {
        add(
            "type_from",
            "is needed (header:<name>, json:<pointer> or literal:<type>) unless a plugin makes the events".into(),
        );
    }
    if let Some(owner) = &spec.owner_id
        && let Err(e) = crate::ingest::envelope::check_id(owner)
    {
        add("owner_id", e);
    }
    let plugin = spec.plugin.as_ref().map(|step| {
        let name = &step.name;
        let file = cx.plugins_dir.join(format!("{name}.wasm"));
        let check = !matches!(
            cx.origin,
            Origin::Api {
                check_plugins: false
            }
        );
        if !super::plugin_name_ok(name) {
            add(
                "plugin.name",
                "must be 1..=64 chars of [A-Za-z0-9_-]".into(),
            );
        } else if check && !file.is_file() {
            add(
                "plugin.name",
                match cx.origin {
                    Origin::Config => format!("plugin {name:?} not found: no {}", file.display()),
                    Origin::Api { .. } => {
                        format!("plugin {name:?} not found in the plugins folder")
                    }
                },
            );
        }
        SourcePlugin {
            name: name.clone(),
            config_json: Value::Object(step.config.clone()).to_string(),
        }
    });
    let max_body_bytes = spec.max_body_bytes.unwrap_or(cx.max_body_bytes);
    // The operator's file may go past `[server] max_body_bytes`; a tenant
    // through the API may not.
    let most = match cx.origin {
        Origin::Config => 64 << 20,
        Origin::Api { .. } => cx.max_body_bytes,
    };
    if max_body_bytes == 0 || max_body_bytes > most {
        add("max_body_bytes", format!("must be 1..={most}"));
    }
    let written = spec.methods.clone().unwrap_or_else(|| vec!["POST".into()]);
    if written.is_empty() || written.len() > MAX_METHODS {
        add("methods", format!("must list 1..={MAX_METHODS} methods"));
    }
    let mut methods = Vec::new();
    for m in &written {
        match m.to_ascii_uppercase().as_str() {
            "POST" => methods.push(Method::POST),
            "PUT" => methods.push(Method::PUT),
            "PATCH" => methods.push(Method::PATCH),
            "GET" => methods.push(Method::GET),
            "DELETE" => methods.push(Method::DELETE),
            _ => add(
                "methods",
                format!("{m:?} is not one of POST, PUT, PATCH, GET, DELETE"),
            ),
        }
    }
    let description = spec.description.clone().unwrap_or_default();
    if description.chars().count() > super::webhook::MAX_DESCRIPTION {
        add(
            "description",
            format!(
                "must be at most {} characters",
                super::webhook::MAX_DESCRIPTION
            ),
        );
    }
    match scheme {
        Some(scheme) if p.is_empty() => Ok(InboundSource {
            id,
            origin: match cx.origin {
                Origin::Config => super::Source::Config,
                Origin::Api { .. } => super::Source::Api,
            },
            scheme,
            secrets,
            tolerance_secs,
            type_from,
            id_from,
            owner_id: spec.owner_id.clone(),
            plugin,
            max_body_bytes,
            methods,
            description,
            created_at: None,
        }),
        _ => Err(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx() -> Context<'static> {
        Context {
            plugins_dir: Path::new("/nonexistent"),
            max_body_bytes: 1 << 20,
            origin: Origin::Api {
                check_plugins: true,
            },
        }
    }

    fn keys(spec: &SourceSpec) -> Vec<String> {
        validate(spec, &cx())
            .unwrap_err()
            .into_iter()
            .map(|p| p.key)
            .collect()
    }

    #[test]
    fn github_takes_its_places_from_the_scheme() {
        let s = validate(
            &SourceSpec {
                id: Some("gh".into()),
                verify: "github".into(),
                secrets: Some(vec!["It's a Secret to Everybody".into()]),
                ..SourceSpec::default()
            },
            &cx(),
        )
        .unwrap();
        assert_eq!(s.type_from.unwrap().describe(), "header:x-github-event");
        assert_eq!(s.id_from.unwrap().describe(), "header:x-github-delivery");
        assert_eq!(s.methods, vec![Method::POST]);
        assert_eq!(s.tolerance_secs, DEFAULT_TOLERANCE_SECS);
    }

    #[test]
    fn every_problem_is_named_at_once() {
        let k = keys(&SourceSpec {
            id: Some("Bad Id".into()),
            verify: "hmac".into(),
            secrets: Some(vec![]),
            type_from: Some("body:/x".into()),
            methods: Some(vec!["TRACE".into()]),
            plugin: Some(SourcePluginSpec {
                name: "missing".into(),
                config: Map::new(),
            }),
            ..SourceSpec::default()
        });
        for key in ["id", "verify", "type_from", "methods", "plugin.name"] {
            assert!(k.contains(&key.to_string()), "{key} in {k:?}");
        }
    }

    #[test]
    fn none_must_be_written_and_takes_no_secret() {
        assert!(keys(&SourceSpec::default()).contains(&"verify".to_string()));
        let k = keys(&SourceSpec {
            id: Some("open".into()),
            verify: "none".into(),
            secrets: Some(vec!["x".into()]),
            type_from: Some("literal:a.b".into()),
            ..SourceSpec::default()
        });
        assert_eq!(k, vec!["secrets"]);
    }

    #[test]
    fn a_source_without_plugin_needs_a_type() {
        let k = keys(&SourceSpec {
            id: Some("b".into()),
            verify: "bearer".into(),
            secrets: Some(vec!["t0k3n".into()]),
            ..SourceSpec::default()
        });
        assert_eq!(k, vec!["type_from"]);
    }

    #[test]
    fn a_literal_id_and_a_tenant_past_the_server_body_limit_are_refused() {
        let k = keys(&SourceSpec {
            id: Some("p".into()),
            verify: "bearer".into(),
            secrets: Some(vec!["t0k3n".into()]),
            type_from: Some("literal:a.b".into()),
            id_from: Some("literal:same".into()),
            max_body_bytes: Some(2 << 20),
            ..SourceSpec::default()
        });
        assert_eq!(k, vec!["id_from", "max_body_bytes"]);
    }

    #[test]
    fn debug_hides_secrets() {
        let spec = SourceSpec {
            secrets: Some(vec!["hunter2".into()]),
            ..SourceSpec::default()
        };
        assert!(!format!("{spec:?}").contains("hunter2"));
    }

    #[test]
    fn places_parse() {
        assert_eq!(
            Extract::parse("json:/a/b").unwrap(),
            Extract::Json("/a/b".into())
        );
        assert!(Extract::parse("json:a").is_err());
        assert!(Extract::parse("header:bad header").is_err());
        assert!(Extract::parse("literal:").is_err());
        assert!(Extract::parse("type").is_err());
        let body = serde_json::json!({"type": "x.y", "n": 7});
        let h = axum::http::HeaderMap::new();
        assert_eq!(
            Extract::parse("json:/n").unwrap().get(&h, Some(&body)),
            Some("7".into())
        );
        assert_eq!(
            Extract::parse("json:/missing")
                .unwrap()
                .get(&h, Some(&body)),
            None
        );
    }
}

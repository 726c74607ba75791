//! `/v1/webhooks`: list and read every webhook the caller may see; create,
//! change, delete and rotate the secret of API webhooks. Config webhooks are
//! listed with `"source": "config"` and change only in `config.toml`.
//!
//! A change is validated by the function `config.toml` webhooks go through,
//! committed to the store, then swapped into the routing table and the
//! workers, all under `hooks_write`, so changes apply one after another.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{json_body, required};
use crate::api::{self, ErrorBody, RotateSecret, SecretRotated, TestSent, WebhookCreated};
use crate::app::App;
use crate::auth::Principal;
use crate::catalog;
use crate::config::{Config, Problem, Secret, Source, Webhook, WebhookSpec};
use crate::error::ApiError;
use crate::event::{Event, Millis, rfc3339};
use crate::store::{Ingested, NewEvent, StoredSecret, StoredWebhook, Target, WebhookConflict};
use crate::token::Scope;

/// How long a rotated-out secret keeps signing unless the request says.
pub const DEFAULT_OVERLAP_SECS: u64 = 86_400;

type Answer<T> = Result<Json<T>, ApiError>;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only webhooks of this owner.
    owner: Option<String>,
    /// The last id of the previous page.
    after: Option<String>,
    /// 1..=1000, default 100.
    limit: Option<String>,
}

#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", params(ListQuery),
    responses(
        (status = 200, body = api::WebhookList),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(app): State<Arc<App>>,
    Extension(p): Extension<Principal>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer<api::WebhookList> {
    p.require(Scope::WebhooksRead)?;
    let q = super::query(q)?;
    let limit = super::limit(q.limit.as_deref(), 100)?;
    if let (Some(mine), Some(asked)) = (&p.owner, &q.owner)
        && mine != asked
    {
        return Err(super::other_owner());
    }
    let table = app.hooks.load_full();
    let page: Vec<&Arc<Webhook>> = table
        .after(q.after.as_deref())
        .filter(|h| p.sees(h))
        .filter(|h| {
            q.owner
                .as_ref()
                .is_none_or(|o| h.owners.as_ref().is_some_and(|l| l.contains(o)))
        })
        .take(limit)
        .collect();
    let next = (page.len() == limit)
        .then(|| page.last().map(|h| h.id.clone()))
        .flatten();
    let depths = queue_depths(&app).await?;
    let mut webhooks = Vec::with_capacity(page.len());
    for hook in page {
        webhooks.push(view(&app, hook, depth(&depths, &hook.id)).await?);
    }
    let config = p.is_admin().then(|| api::ConfigStatus {
        path: app.config.load().path.display().to_string(),
        last_reload_error: app.reload_status.last_error(),
    });
    Ok(Json(api::WebhookList {
        webhooks,
        next,
        config,
    }))
}

#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "webhook id")),
    responses((status = 200, body = api::Webhook), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    State(app): State<Arc<App>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Answer<api::Webhook> {
    p.require(Scope::WebhooksRead)?;
    let hook = visible(&app, &p, &id)?;
    let depth = app.store.queue_depth(&id).await?;
    Ok(Json(view(&app, &hook, depth).await?))
}

#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = WebhookSpec,
    responses((status = 201, body = WebhookCreated), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(app): State<Arc<App>>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<WebhookCreated>), ApiError> {
    p.require(Scope::WebhooksWrite)?;
    let mut spec: WebhookSpec = required(json_body(&headers, &body)?)?;
    own(&p, &mut spec)?;
    let id = spec
        .id
        .get_or_insert_with(|| format!("wh_{}", ulid::Ulid::new().to_string().to_lowercase()))
        .clone();
    let mut secrets = spec.secrets.take().unwrap_or_default();
    if secrets.is_empty() {
        secrets.push(Secret::generate());
    }
    let now = app.clock.now();
    let stored = StoredWebhook {
        id: id.clone(),
        spec,
        secrets: secrets
            .iter()
            .map(|s| StoredSecret {
                secret: s.clone(),
                expires_at: None,
            })
            .collect(),
        created_at: now,
        updated_at: now,
        version: 1,
    };
    let _writing = app.hooks_write.lock().await;
    let config = app.config.load_full();
    let hook = Arc::new(catalog::resolve(&config, &stored, true).map_err(invalid)?);
    if config.webhook(&id).is_some() {
        return Err(taken(&id));
    }
    match app.store.put_webhook(stored, None).await? {
        Ok(()) => {}
        Err(_) => return Err(taken(&id)),
    }
    install(&app, &config, Some(hook.clone()), None).await?;
    let webhook = view(&app, &hook, 0).await?;
    Ok((
        StatusCode::CREATED,
        Json(WebhookCreated {
            webhook,
            secret: secrets.swap_remove(0),
        }),
    ))
}

#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "webhook id")),
    request_body(content = Object, description = "Keys of a webhook to change; `null` resets one to its default."),
    responses((status = 200, body = api::Webhook), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update(
    State(app): State<Arc<App>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer<api::Webhook> {
    p.require(Scope::WebhooksWrite)?;
    let patch: Map<String, Value> = required(json_body(&headers, &body)?)?;
    api_hook(&app, &p, &id)?;
    if patch.get("id").is_some_and(|v| v != &json!(id)) {
        return Err(ApiError::bad_request(
            "invalid_webhook",
            "id: a webhook's id cannot change",
        ));
    }
    let _writing = app.hooks_write.lock().await;
    let config = app.config.load_full();
    let now = app.clock.now();
    // Compare-and-set: another node may change it between read and write.
    for _ in 0..3 {
        let Some(before) = app.store.api_webhook(&id).await? else {
            return Err(ApiError::not_found("webhook", &id));
        };
        let mut after = before.clone();
        after.spec = merge(&before.spec, &patch)?;
        own(&p, &mut after.spec)?;
        if let Some(secrets) = after.spec.secrets.take() {
            after.secrets = secrets
                .into_iter()
                .map(|secret| StoredSecret {
                    secret,
                    expires_at: None,
                })
                .collect();
        }
        after.updated_at = now;
        after.version = before.version + 1;
        let hook = Arc::new(catalog::resolve(&config, &after, true).map_err(invalid)?);
        match app.store.put_webhook(after, Some(before.version)).await? {
            Ok(()) => {
                install(&app, &config, Some(hook.clone()), None).await?;
                let depth = app.store.queue_depth(&id).await?;
                return Ok(Json(view(&app, &hook, depth).await?));
            }
            Err(WebhookConflict::Changed) => continue,
            Err(_) => return Err(ApiError::not_found("webhook", &id)),
        }
    }
    Err(ApiError::conflict(
        "changed_concurrently",
        format!("webhook {id:?} kept changing while this update was applied; retry"),
    ))
}

#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "webhook id")),
    responses((status = 200, body = api::WebhookDeleted), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(
    State(app): State<Arc<App>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Answer<api::WebhookDeleted> {
    p.require(Scope::WebhooksWrite)?;
    api_hook(&app, &p, &id)?;
    let _writing = app.hooks_write.lock().await;
    let config = app.config.load_full();
    let canceled = match app.store.delete_webhook(&id, app.clock.now()).await? {
        Ok(n) => n,
        Err(_) => return Err(ApiError::not_found("webhook", &id)),
    };
    install(&app, &config, None, Some(&id)).await?;
    Ok(Json(api::WebhookDeleted {
        id,
        deleted: true,
        canceled,
    }))
}

#[utoipa::path(post, path = "/v1/webhooks/{id}/secret/rotate", tag = "webhooks",
    params(("id" = String, Path, description = "webhook id")),
    request_body(content = Option<RotateSecret>),
    responses((status = 200, body = SecretRotated), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn rotate_secret(
    State(app): State<Arc<App>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer<SecretRotated> {
    p.require(Scope::WebhooksWrite)?;
    let req: RotateSecret = json_body(&headers, &body)?.unwrap_or_default();
    let overlap = req.overlap_secs.unwrap_or(DEFAULT_OVERLAP_SECS);
    if overlap > 365 * 86_400 {
        return Err(ApiError::bad_request(
            "invalid_body",
            "overlap_secs: at most a year (31536000)",
        ));
    }
    api_hook(&app, &p, &id)?;
    let _writing = app.hooks_write.lock().await;
    let config = app.config.load_full();
    let now = app.clock.now();
    let Some(before) = app.store.api_webhook(&id).await? else {
        return Err(ApiError::not_found("webhook", &id));
    };
    let expires = now + (overlap as Millis) * 1000;
    let secret = Secret::generate();
    let mut after = before.clone();
    after.secrets = rotated(&before.secrets, &secret, now, expires);
    after.updated_at = now;
    after.version = before.version + 1;
    let hook = Arc::new(catalog::resolve(&config, &after, false).map_err(invalid)?);
    if app
        .store
        .put_webhook(after, Some(before.version))
        .await?
        .is_err()
    {
        return Err(ApiError::conflict(
            "changed_concurrently",
            format!("webhook {id:?} changed while its secret was rotated; retry"),
        ));
    }
    install(&app, &config, Some(hook), None).await?;
    Ok(Json(SecretRotated {
        id,
        secret,
        previous_expires_at: (before
            .secrets
            .iter()
            .any(|s| s.expires_at.is_none_or(|t| t > now)))
        .then(|| rfc3339(expires)),
    }))
}

/// The new secret first; the previous ones sign on until `expires` (or
/// their own earlier expiry); those already expired are dropped.
fn rotated(before: &[StoredSecret], new: &str, now: Millis, expires: Millis) -> Vec<StoredSecret> {
    let mut out = vec![StoredSecret {
        secret: new.to_owned(),
        expires_at: None,
    }];
    for s in before {
        let until = s.expires_at.map_or(expires, |t| t.min(expires));
        if until > now {
            out.push(StoredSecret {
                secret: s.secret.clone(),
                expires_at: Some(until),
            });
        }
    }
    out
}

#[utoipa::path(post, path = "/v1/webhooks/{id}/test", tag = "webhooks",
    params(("id" = String, Path, description = "webhook id")),
    responses((status = 202, body = TestSent), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn test(
    State(app): State<Arc<App>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<TestSent>), ApiError> {
    p.require(Scope::WebhooksWrite)?;
    let hook = visible(&app, &p, &id)?;
    let now = app.clock.now();
    let event = Event {
        id: format!("evt_{}", ulid::Ulid::new().to_string().to_lowercase()),
        event_type: "weir.test".into(),
        owner_id: hook.tenant().map(str::to_owned),
        data: json!({"webhook": id, "message": "test event sent by weir"}).to_string(),
        occurred_at: rfc3339(now),
    };
    let event_id = event.id.clone();
    let traced = app.telemetry.as_deref().map(|t| {
        let mut spans = t.ingest(crate::telemetry::IngestSource::Test);
        spans.event(&event, 1, std::time::SystemTime::now(), None);
        spans
    });
    let target = Target {
        webhook: id.clone(),
        tenant: hook.tenant().map(str::to_owned),
    };
    let stored = app
        .store
        .ingest(
            vec![NewEvent {
                event,
                webhooks: vec![target],
            }],
            now,
            0,
        )
        .await?;
    if let Some(spans) = traced {
        spans.stored(&stored);
    }
    let delivery_id = match stored.into_iter().next() {
        Some(Ingested::Stored(mut d)) if !d.is_empty() => d.remove(0).id,
        _ => return Err(ApiError::internal("test event was not stored")),
    };
    app.deliverer.notify(&id);
    Ok((
        StatusCode::ACCEPTED,
        Json(TestSent {
            delivery_id,
            event_id,
        }),
    ))
}

#[utoipa::path(post, path = "/v1/webhooks/{id}/enable", tag = "webhooks",
    params(("id" = String, Path, description = "webhook id")),
    responses((status = 200, body = api::Enabled), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn enable(
    State(app): State<Arc<App>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Answer<api::Enabled> {
    p.require(Scope::WebhooksWrite)?;
    visible(&app, &p, &id)?;
    app.deliverer.enable(&id).await?;
    Ok(Json(api::Enabled { id, enabled: true }))
}

/// The webhook `id` if the caller may see it; 404 otherwise, so another
/// owner's ids look exactly like ids that do not exist.
pub fn visible(app: &App, p: &Principal, id: &str) -> Result<Arc<Webhook>, ApiError> {
    app.hooks
        .load()
        .get(id)
        .filter(|h| p.sees(h))
        .cloned()
        .ok_or_else(|| ApiError::not_found("webhook", id))
}

/// Like [`visible`], and the webhook must be one the API may change.
fn api_hook(app: &App, p: &Principal, id: &str) -> Result<Arc<Webhook>, ApiError> {
    let hook = visible(app, p, id)?;
    if hook.source == Source::Config {
        return Err(ApiError::conflict(
            "defined_in_config",
            format!("webhook {id:?} is defined in config.toml; change it there"),
        ));
    }
    Ok(hook)
}

/// An owner-scoped caller's webhooks belong to its owner: absent `owners`
/// becomes it, any other list is refused.
fn own(p: &Principal, spec: &mut WebhookSpec) -> Result<(), ApiError> {
    let Some(owner) = &p.owner else {
        return Ok(());
    };
    match &spec.owners {
        None => spec.owners = Some(vec![owner.clone()]),
        Some(list) if list.len() == 1 && &list[0] == owner => {}
        Some(_) => return Err(super::other_owner()),
    }
    Ok(())
}

fn taken(id: &str) -> ApiError {
    super::taken("webhook_exists", "webhook", id)
}

fn invalid(problems: Vec<Problem>) -> ApiError {
    super::invalid("invalid_webhook", problems)
}

/// `before` with `patch`'s top-level keys replaced (`null` removes one).
fn merge(before: &WebhookSpec, patch: &Map<String, Value>) -> Result<WebhookSpec, ApiError> {
    let Value::Object(mut merged) = serde_json::to_value(before).expect("a spec serialises") else {
        unreachable!("a spec is an object");
    };
    for (key, value) in patch {
        if value.is_null() {
            merged.remove(key);
        } else {
            merged.insert(key.clone(), value.clone());
        }
    }
    serde_json::from_value(Value::Object(merged))
        .map_err(|e| ApiError::bad_request("invalid_webhook", e.to_string()))
}

/// Swaps in a table with `put` added (or replacing its namesake) and
/// `remove` gone, and brings the workers in line. Call with `hooks_write`.
async fn install(
    app: &App,
    config: &Config,
    put: Option<Arc<Webhook>>,
    remove: Option<&str>,
) -> Result<(), ApiError> {
    let current = app.hooks.load_full();
    let replaced = put.as_ref().map(|h| h.id.as_str());
    let mut api: Vec<Arc<Webhook>> = current
        .api_hooks()
        .filter(|h| Some(h.id.as_str()) != replaced && Some(h.id.as_str()) != remove)
        .cloned()
        .collect();
    api.extend(put);
    let table = catalog::table(config, api).map_err(ApiError::internal)?;
    app.install(table).await;
    Ok(())
}

async fn queue_depths(app: &App) -> Result<std::collections::HashMap<String, u64>, ApiError> {
    Ok(app
        .store
        .queue_depths()
        .await?
        .into_iter()
        .map(|d| (d.webhook, d.live))
        .collect())
}

fn depth(depths: &std::collections::HashMap<String, u64>, id: &str) -> u64 {
    depths.get(id).copied().unwrap_or(0)
}

/// A webhook as the API shows it.
async fn view(app: &App, hook: &Webhook, queue_depth: u64) -> Result<api::Webhook, ApiError> {
    let health = app.store.health(&hook.id).await?;
    let disabled = app.deliverer.disabled_reason(&hook.id);
    let mut url = hook.url.clone();
    // Credentials in a URL are secrets too.
    if url.password().is_some() {
        let _ = url.set_password(Some("redacted"));
    }
    let policy = &hook.policy;
    Ok(api::Webhook {
        id: hook.id.clone(),
        source: hook.source,
        url: url.to_string(),
        description: hook.description.clone(),
        metadata: hook.metadata.clone(),
        events: hook.events.iter().map(|g| g.as_str().to_owned()).collect(),
        owners: hook.owners.clone(),
        active: hook.active && disabled.is_none(),
        configured_active: hook.active,
        disabled_reason: disabled,
        ordering: hook.ordering,
        plugins: hook
            .plugins
            .iter()
            .map(|p| api::PluginStep {
                name: p.name.clone(),
                on_error: p.on_error,
                config: serde_json::from_str(&p.config_json).unwrap_or(Value::Null),
            })
            .collect(),
        headers: hook
            .headers
            .iter()
            .map(|(n, _)| (n.as_str().to_owned(), "(redacted)".to_owned()))
            .collect(),
        timeout_secs: policy.timeout.as_secs(),
        max_retries: policy.max_retries,
        success_status: [*policy.success.start(), *policy.success.end()],
        retry_delays_secs: policy.retry_delays.iter().map(|d| d.as_secs()).collect(),
        max_in_flight: policy.max_in_flight,
        disable_after_hours: policy.disable_after.as_secs() / 3600,
        rate_limit_per_sec: policy.rate_limit_per_sec,
        signed: !hook.signing_secrets(app.clock.now()).is_empty(),
        queue_depth,
        last_success_at: health.last_success_at.map(rfc3339),
        last_failure_at: health.last_failure_at.map(rfc3339),
        failing_since: health.failing_since.map(rfc3339),
        created_at: hook.created_at.map(rfc3339),
        updated_at: hook.updated_at.map(rfc3339),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_live_secrets_until_the_overlap_ends_and_drops_expired_ones() {
        let before = vec![
            StoredSecret {
                secret: "a".into(),
                expires_at: None,
            },
            StoredSecret {
                secret: "b".into(),
                expires_at: Some(500),
            },
            StoredSecret {
                secret: "c".into(),
                expires_at: Some(50),
            },
        ];
        let after = rotated(&before, "new", 100, 1000);
        let got: Vec<(&str, Option<Millis>)> = after
            .iter()
            .map(|s| (s.secret.as_str(), s.expires_at))
            .collect();
        assert_eq!(got, [("new", None), ("a", Some(1000)), ("b", Some(500))]);
    }

    #[test]
    fn a_patch_replaces_keys_resets_nulls_and_names_unknown_ones() {
        let before = WebhookSpec {
            url: "https://a.example/".into(),
            description: Some("x".into()),
            max_retries: Some(3),
            ..Default::default()
        };
        let patch = json!({"url": "https://b.example/", "max_retries": null});
        let after = merge(&before, patch.as_object().unwrap()).unwrap();
        assert_eq!(after.url, "https://b.example/");
        assert_eq!(after.max_retries, None);
        assert_eq!(after.description.as_deref(), Some("x"));
        let bad = merge(&before, json!({"urll": "x"}).as_object().unwrap()).unwrap_err();
        assert!(bad.message.contains("urll"), "{}", bad.message);
    }
}

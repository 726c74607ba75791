//! `/v1/plugins`: every plugin in the plugins folder, its state, which of
//! the caller's webhooks use it and how its calls on this node went; and a
//! dry run of a filter plugin on an event, for admins.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::HeaderMap;

use super::{json_body, required};
use crate::api::{ErrorBody, PluginList, PluginRun, PluginView, RunPlugin, RunVerdict};
use crate::app::App;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::event::Event;
use crate::plugin::{DryRun, PluginError, Verdict};
use crate::token::Scope;

#[utoipa::path(get, path = "/v1/plugins", tag = "plugins",
    responses((status = 200, body = PluginList), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(app): State<Arc<App>>,
    Extension(p): Extension<Principal>,
) -> Result<Json<PluginList>, ApiError> {
    p.require(Scope::PluginsRead)?;
    let hooks = app.hooks.load();
    let mut figures = app.metrics.plugin_figures();
    let plugins = app
        .plugins
        .states()
        .into_iter()
        .map(|status| {
            let mut used_by: Vec<String> = hooks
                .all()
                .filter(|h| p.sees(h) && h.plugins.iter().any(|s| s.name == status.name))
                .map(|h| h.id.clone())
                .collect();
            used_by.sort();
            let f = figures.remove(&status.name).unwrap_or_default();
            PluginView {
                used_by,
                calls: f.calls,
                failures: f.failures,
                mean_ms: (f.timed > 0).then(|| f.seconds * 1000.0 / f.timed as f64),
                status,
            }
        })
        .collect();
    Ok(Json(PluginList { plugins }))
}

#[utoipa::path(post, path = "/v1/plugins/{name}/run", tag = "plugins",
    params(("name" = String, Path, description = "plugin name")),
    request_body = RunPlugin,
    responses((status = 200, body = PluginRun, description = "the run happened; a plugin failure is `verdict: failure`"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 415, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn run(
    State(app): State<Arc<App>>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<PluginRun>, ApiError> {
    p.require(Scope::Admin)?;
    let req: RunPlugin = required(json_body(&headers, &body)?)?;
    let event = event(req.event.get(), app.clock.now())?;
    let config = req.config.as_deref().map_or("{}", |c| c.get());
    match app.plugins.dry_run(&name, &event, config).await {
        Ok(run) => Ok(Json(answer(name, run))),
        Err(PluginError::WrongKind { plugin, is }) => Err(ApiError::bad_request(
            "wrong_plugin_kind",
            format!("plugin {plugin} is a {is} plugin: only filter plugins can be run on an event"),
        )),
        Err(_) => Err(not_loaded(&app, &name)),
    }
}

/// The event of a run, read as `POST /v1/events` reads one.
fn event(raw: &str, now: crate::event::Millis) -> Result<Event, ApiError> {
    let invalid = |m: String| ApiError::bad_request("invalid_event", m);
    if !raw.trim_start().starts_with('{') {
        return Err(invalid("event: must be one event object".into()));
    }
    let mut events = crate::ingest::envelope::parse_body(raw.as_bytes(), now)
        .map_err(|e| invalid(e.to_string()))?;
    events
        .pop()
        .ok_or_else(|| invalid("event: must be one event object".into()))
}

/// 404 for a name the plugins folder does not have; 409 for one that is
/// there but has no version loaded.
fn not_loaded(app: &App, name: &str) -> ApiError {
    match app.plugins.states().into_iter().find(|s| s.name == name) {
        None => ApiError::not_found("plugin", name),
        Some(s) => ApiError::conflict(
            "plugin_not_loaded",
            format!(
                "plugin {name} has no version loaded: {}",
                s.error.as_deref().unwrap_or("it failed to load")
            ),
        ),
    }
}

fn answer(plugin: String, run: DryRun) -> PluginRun {
    let mut out = PluginRun {
        plugin,
        verdict: RunVerdict::Failure,
        reason: None,
        error: None,
        body: None,
        headers: Vec::new(),
        logs: run.logs,
        time_ms: run.took.as_secs_f64() * 1000.0,
    };
    match run.result {
        Ok(Verdict::Deliver(r)) => {
            out.verdict = RunVerdict::Deliver;
            out.body = Some(r.body);
            out.headers = r.headers;
        }
        Ok(Verdict::Drop(reason)) => {
            out.verdict = RunVerdict::Drop;
            out.reason = Some(reason);
        }
        Err(e) => out.error = Some(e.to_string()),
    }
    out
}

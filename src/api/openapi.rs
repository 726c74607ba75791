//! The OpenAPI 3.1 document, generated from the handlers' own annotations and
//! the types in [`crate::api`], and served at `GET /v1/openapi.json`.

use axum::Json;
use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::admin::{deliveries, plugins, sources, stats, tokens, webhooks, whoami};
use crate::ingest;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "weir",
        description = "A WebAssembly-pluggable webhook event router: ingest events, manage webhooks and tokens, read the delivery log.",
        license(name = "MIT OR Apache-2.0")
    ),
    paths(
        ingest::post_events,
        health,
        webhooks::list,
        webhooks::create,
        webhooks::get,
        webhooks::update,
        webhooks::delete,
        webhooks::rotate_secret,
        webhooks::test,
        webhooks::enable,
        stats::stats,
        deliveries::list,
        deliveries::get,
        deliveries::replay,
        deliveries::bulk_replay,
        plugins::list,
        plugins::run,
        sources::list,
        sources::create,
        sources::get,
        sources::delete,
        sources::requests,
        sources::request,
        sources::replay,
        tokens::create,
        tokens::list,
        tokens::revoke,
        whoami::whoami,
    ),
    modifiers(&Bearer),
    tags(
        (name = "events", description = "What producers post."),
        (name = "webhooks", description = "Webhooks from config.toml and from this API."),
        (name = "deliveries", description = "The delivery log and replays."),
        (name = "plugins", description = "The plugins folder, and dry runs of its filter plugins."),
        (name = "sources", description = "Inbound sources and the requests they caught."),
        (name = "tokens", description = "API tokens (admin only), and the caller's own."),
    )
)]
pub struct Doc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// `GET /healthz`.
#[utoipa::path(get, path = "/healthz", tag = "events",
    responses((status = 200, body = crate::api::Health)))]
pub async fn health() -> Json<crate::api::Health> {
    Json(crate::api::Health {
        status: "ok".into(),
    })
}

/// `GET /v1/openapi.json`.
pub async fn serve() -> impl IntoResponse {
    Json(Doc::openapi())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_is_openapi_3_1_and_names_every_route() {
        let doc = serde_json::to_value(<super::Doc as utoipa::OpenApi>::openapi()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        for path in [
            "/v1/events",
            "/v1/webhooks",
            "/v1/webhooks/{id}",
            "/v1/webhooks/{id}/secret/rotate",
            "/v1/deliveries/{id}",
            "/v1/tokens/{id}",
            "/v1/sources/{id}/requests/{request}/replay",
            "/v1/whoami",
            "/v1/webhooks/{id}/stats",
            "/v1/plugins/{name}/run",
        ] {
            assert!(doc["paths"].get(path).is_some(), "{path}");
        }
    }
}

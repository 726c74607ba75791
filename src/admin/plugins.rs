//! `GET /v1/plugins`: every plugin in the plugins folder and its state.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, State};

use crate::api::{ErrorBody, PluginList};
use crate::app::App;
use crate::auth::Principal;
use crate::error::ApiError;
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
    Ok(Json(PluginList {
        plugins: app.plugins.states(),
    }))
}

//! `GET /v1/whoami`: what the caller's token is and may do, so a client (the
//! console) can say who is signed in and hide what the token cannot do. Any
//! valid token may ask; the answer is about that token only.

use axum::Json;
use axum::extract::Extension;

use crate::api::{ErrorBody, TokenIdentity, WhoAmI};
use crate::auth::Principal;
use crate::error::ApiError;

#[utoipa::path(get, path = "/v1/whoami", tag = "tokens",
    responses((status = 200, body = WhoAmI), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn whoami(Extension(p): Extension<Principal>) -> Result<Json<WhoAmI>, ApiError> {
    // Without a token, only the tokenless admin (no `admin_token` set) is
    // someone; what the config leaves open for ingest is not a sign-in.
    if p.is_anonymous() && !p.is_admin() {
        return Err(ApiError::unauthorized());
    }
    Ok(Json(WhoAmI {
        owner: p.owner.clone(),
        scopes: p.scopes(),
        admin: p.is_admin(),
        token: p.token.as_ref().map(|t| TokenIdentity {
            id: t.id.clone(),
            prefix: t.prefix.clone(),
        }),
    }))
}

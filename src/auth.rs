//! Who is asking: the bearer token of a request becomes a [`Principal`] with
//! scopes and, for a tenant's token, an owner.
//!
//! Tokens are checked in this order: the config's `admin_token` (every
//! scope), its `ingest_token` (`events:write`), then API tokens, looked up by
//! the SHA-256 of what was presented. A request without a token gets what the
//! config leaves open: everything but ingest when no `admin_token` is set,
//! ingest when no `ingest_token` is set. A token that was presented but is
//! unknown, revoked or expired is always refused, and the `401` says which:
//! the token is the caller's own, so that tells them nothing new.

use std::collections::HashMap;
use std::sync::RwLock;

use axum::http::{HeaderMap, StatusCode, header};
use subtle::ConstantTimeEq as _;

use crate::config::{ServerConfig, Webhook};
use crate::error::ApiError;
use crate::event::{Millis, rfc3339};
use crate::token::{self, Scope, Scopes, TokenRecord};

/// The caller of one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    scopes: Scopes,
    /// Only this owner's webhooks and deliveries; `None` = every owner.
    pub owner: Option<String>,
    /// No token was presented: a missing scope is then a 401, not a 403.
    anonymous: bool,
    /// The API token presented, if it was one (not a config token).
    pub token: Option<TokenRef>,
}

/// How an API token is known without the token itself.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRef {
    pub id: String,
    pub prefix: String,
}

impl Principal {
    pub fn admin() -> Principal {
        Principal {
            scopes: Scopes::all(),
            owner: None,
            anonymous: false,
            token: None,
        }
    }

    /// Every scope the caller holds (`admin` implies the others).
    pub fn scopes(&self) -> Vec<Scope> {
        Scope::ALL
            .into_iter()
            .filter(|s| self.scopes.has(*s))
            .collect()
    }

    /// Whether the request carried a token: anonymous callers only get what
    /// the config leaves open.
    pub fn is_anonymous(&self) -> bool {
        self.anonymous
    }

    /// 403 naming the scope unless the caller has it (401 without a token).
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.scopes.has(scope) {
            Ok(())
        } else if self.anonymous {
            Err(ApiError::unauthorized())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("this token lacks the scope {scope}"),
            ))
        }
    }

    pub fn is_admin(&self) -> bool {
        self.scopes.has(Scope::Admin)
    }

    /// Whether the caller may see deliveries that belong to `tenant`.
    pub fn sees_tenant(&self, tenant: Option<&str>) -> bool {
        match &self.owner {
            None => true,
            Some(o) => tenant == Some(o.as_str()),
        }
    }

    /// Whether the caller may see `hook` (its owners are exactly the caller's).
    pub fn sees(&self, hook: &Webhook) -> bool {
        self.sees_tenant(hook.tenant())
    }
}

/// The API tokens, kept in memory by hash (the store is the truth; this is
/// loaded at start and updated on every create and revoke).
///
/// A writer holds [`Tokens::writing`] from its store write to its
/// [`Tokens::put`], and a re-read from its store read to its
/// [`Tokens::replace`]: otherwise a re-read that read the store just before
/// a token was created would replace the cache just after, and the new
/// token would be unknown until the next re-read.
#[derive(Default)]
pub struct Tokens {
    by_hash: RwLock<HashMap<[u8; 32], TokenRecord>>,
    writes: tokio::sync::Mutex<()>,
}

impl Tokens {
    pub fn load(list: Vec<TokenRecord>) -> Tokens {
        Tokens {
            by_hash: RwLock::new(list.into_iter().map(|t| (t.hash, t)).collect()),
            writes: Default::default(),
        }
    }

    /// Held across a store write or read and the cache update that follows.
    pub async fn writing(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.writes.lock().await
    }

    /// Replaces every record (another node changed the store).
    pub fn replace(&self, list: Vec<TokenRecord>) {
        *self.by_hash.write().expect("tokens") = list.into_iter().map(|t| (t.hash, t)).collect();
    }

    /// Adds or replaces (a revocation) one record.
    pub fn put(&self, t: TokenRecord) {
        self.by_hash.write().expect("tokens").insert(t.hash, t);
    }

    fn find(&self, presented: &str, now: Millis) -> Result<Principal, Refused> {
        let hash = token::hash(presented);
        let map = self.by_hash.read().expect("tokens");
        // The map found it by hash; compare again in constant time anyway.
        let t = map
            .get(&hash)
            .filter(|t| bool::from(t.hash.ct_eq(&hash)))
            .ok_or(Refused::Unknown)?;
        if t.revoked_at.is_some() {
            return Err(Refused::Revoked);
        }
        if let Some(at) = t.expires_at.filter(|at| *at <= now) {
            return Err(Refused::Expired(at));
        }
        debug_assert!(t.live(now));
        Ok(Principal {
            scopes: t.scopes(),
            owner: t.owner.clone(),
            anonymous: false,
            token: Some(TokenRef {
                id: t.id.clone(),
                prefix: t.prefix.clone(),
            }),
        })
    }
}

/// Why a presented API token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    Unknown,
    Revoked,
    Expired(Millis),
}

impl Refused {
    fn into_error(self) -> ApiError {
        let message = match self {
            Refused::Unknown => "unknown token".to_owned(),
            Refused::Revoked => "this token was revoked".to_owned(),
            Refused::Expired(at) => format!("this token expired at {}", rfc3339(at)),
        };
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
}

/// An `Authorization` header that is not a bearer token.
#[derive(Debug, PartialEq, Eq)]
pub struct NotBearer;

/// The token of `Authorization: Bearer <token>`; the scheme is
/// case-insensitive (RFC 9110).
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, NotBearer> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| NotBearer)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(NotBearer)?;
    let token = token.trim();
    if scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() {
        Ok(Some(token))
    } else {
        Err(NotBearer)
    }
}

/// The principal for a request's headers, or 401.
pub fn authenticate(
    headers: &HeaderMap,
    server: &ServerConfig,
    tokens: &Tokens,
    now: Millis,
) -> Result<Principal, ApiError> {
    let presented = bearer(headers).map_err(|NotBearer| ApiError::unauthorized())?;
    let Some(presented) = presented else {
        // What the config leaves open.
        let mut scopes = Scopes::default();
        if server.admin_token.is_none() {
            scopes = Scopes::all().without(Scope::EventsWrite);
        }
        if server.ingest_token.is_none() {
            scopes = scopes.with(Scope::EventsWrite);
        }
        return Ok(Principal {
            scopes,
            owner: None,
            anonymous: true,
            token: None,
        });
    };
    if server
        .admin_token
        .as_ref()
        .is_some_and(|t| t.matches(presented))
    {
        return Ok(Principal::admin());
    }
    if server
        .ingest_token
        .as_ref()
        .is_some_and(|t| t.matches(presented))
    {
        return Ok(Principal {
            scopes: Scopes::of(&[Scope::EventsWrite]),
            owner: None,
            anonymous: false,
            token: None,
        });
    }
    tokens.find(presented, now).map_err(Refused::into_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, auth.parse().unwrap());
        h
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_nothing_else_passes() {
        for ok in ["Bearer abc", "bearer abc", "BEARER abc", "bEaReR   abc "] {
            assert_eq!(bearer(&headers(ok)), Ok(Some("abc")), "{ok}");
        }
        for bad in [
            "Basic abc",
            "Bearer",
            "Bearer ",
            "Bearerabc",
            "abc",
            "Token abc",
        ] {
            assert_eq!(bearer(&headers(bad)), Err(NotBearer), "{bad}");
        }
        assert_eq!(bearer(&HeaderMap::new()), Ok(None));
    }

    #[test]
    fn revoked_and_expired_tokens_find_nothing() {
        let (text, mut rec) = token::issue(
            Some("org_1".into()),
            vec![Scope::WebhooksRead],
            String::new(),
            0,
            Some(1000),
        );
        let tokens = Tokens::load(vec![rec.clone()]);
        let p = tokens.find(&text, 999).expect("live");
        assert_eq!(p.owner.as_deref(), Some("org_1"));
        assert_eq!(p.scopes(), [Scope::WebhooksRead]);
        assert_eq!(
            p.token.as_ref().map(|t| t.id.as_str()),
            Some(rec.id.as_str())
        );
        assert!(p.require(Scope::WebhooksRead).is_ok());
        assert!(p.require(Scope::WebhooksWrite).is_err());
        assert_eq!(tokens.find(&text, 1000), Err(Refused::Expired(1000)));
        assert_eq!(tokens.find("weir_nope", 0), Err(Refused::Unknown));
        rec.revoked_at = Some(5);
        tokens.put(rec);
        assert_eq!(tokens.find(&text, 10), Err(Refused::Revoked));
        assert_eq!(
            tokens.find(&text, 2000),
            Err(Refused::Revoked),
            "revoked wins"
        );
    }

    #[test]
    fn a_refused_token_is_told_why() {
        let messages: Vec<String> = [Refused::Unknown, Refused::Revoked, Refused::Expired(0)]
            .into_iter()
            .map(|r| r.into_error())
            .inspect(|e| {
                assert_eq!(
                    (e.status, e.code),
                    (StatusCode::UNAUTHORIZED, "unauthorized")
                )
            })
            .map(|e| e.message)
            .collect();
        assert_eq!(
            messages,
            [
                "unknown token",
                "this token was revoked",
                "this token expired at 1970-01-01T00:00:00.000Z"
            ]
        );
    }

    #[test]
    fn an_admin_token_holds_every_scope() {
        assert_eq!(Principal::admin().scopes(), Scope::ALL);
    }
}

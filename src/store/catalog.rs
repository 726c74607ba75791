//! SQLite statements for the catalog: webhooks created through the API and
//! API tokens. Small tables, read whole at start and kept in memory above.

use rusqlite::{Connection, OptionalExtension, params};

use super::{StoredSecret, StoredWebhook, WebhookConflict};
use crate::event::Millis;
use crate::token::{Scope, TokenRecord};

/// A value read back that this binary cannot understand: an error, never a
/// default that would quietly change its meaning.
pub(super) fn corrupt(what: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, what.into())
}

fn json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> rusqlite::Result<T> {
    serde_json::from_str(text).map_err(|e| corrupt(format!("{what}: {e}")))
}

/// Every API webhook, or the one with id `only`.
pub fn webhooks(c: &Connection, only: Option<&str>) -> rusqlite::Result<Vec<StoredWebhook>> {
    c.prepare_cached(
        "SELECT id, spec, secrets, created_at, updated_at, version FROM webhooks
         WHERE ?1 IS NULL OR id = ?1 ORDER BY id",
    )?
    .query_map(params![only], |r| {
        let spec: String = r.get(1)?;
        let secrets: String = r.get(2)?;
        Ok(StoredWebhook {
            id: r.get(0)?,
            spec: json(&spec, "webhook spec")?,
            secrets: json::<Vec<StoredSecret>>(&secrets, "webhook secrets")?,
            created_at: r.get(3)?,
            updated_at: r.get(4)?,
            version: r.get(5)?,
        })
    })?
    .collect()
}

pub fn put_webhook(
    c: &Connection,
    h: &StoredWebhook,
    expected: Option<i64>,
) -> rusqlite::Result<Result<(), WebhookConflict>> {
    let spec = serde_json::to_string(&h.spec).expect("a spec serialises");
    let secrets = serde_json::to_string(&h.secrets).expect("secrets serialise");
    let Some(expected) = expected else {
        let n = c
            .prepare_cached(
                "INSERT INTO webhooks (id, spec, secrets, created_at, updated_at, version)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO NOTHING",
            )?
            .execute(params![
                h.id,
                spec,
                secrets,
                h.created_at,
                h.updated_at,
                h.version
            ])?;
        return Ok(if n == 1 {
            Ok(())
        } else {
            Err(WebhookConflict::Exists)
        });
    };
    let n = c
        .prepare_cached(
            "UPDATE webhooks SET spec = ?2, secrets = ?3, updated_at = ?4, version = ?5
             WHERE id = ?1 AND version = ?6",
        )?
        .execute(params![
            h.id,
            spec,
            secrets,
            h.updated_at,
            h.version,
            expected
        ])?;
    if n == 1 {
        return Ok(Ok(()));
    }
    let exists = c
        .prepare_cached("SELECT 1 FROM webhooks WHERE id = ?1")?
        .exists(params![h.id])?;
    Ok(Err(if exists {
        WebhookConflict::Changed
    } else {
        WebhookConflict::Missing
    }))
}

const TOKEN_COLUMNS: &str =
    "id, prefix, hash, owner, scopes, description, created_at, expires_at, revoked_at";

fn token_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRecord> {
    let hash: Vec<u8> = r.get(2)?;
    let scopes: String = r.get(4)?;
    let scopes = scopes
        .split_whitespace()
        .map(|s| Scope::parse(s).ok_or_else(|| corrupt(format!("unknown scope {s:?}"))))
        .collect::<rusqlite::Result<_>>()?;
    Ok(TokenRecord {
        id: r.get(0)?,
        prefix: r.get(1)?,
        hash: hash
            .try_into()
            .map_err(|_| corrupt("a token hash is not 32 bytes".into()))?,
        owner: r.get(3)?,
        scopes,
        description: r.get(5)?,
        created_at: r.get(6)?,
        expires_at: r.get(7)?,
        revoked_at: r.get(8)?,
    })
}

pub fn tokens(c: &Connection) -> rusqlite::Result<Vec<TokenRecord>> {
    c.prepare_cached(&format!(
        "SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at, id"
    ))?
    .query_map([], token_from_row)?
    .collect()
}

pub fn put_token(c: &Connection, t: &TokenRecord) -> rusqlite::Result<()> {
    let scopes: Vec<&str> = t.scopes.iter().map(|s| s.as_str()).collect();
    c.prepare_cached(&format!(
        "INSERT INTO tokens ({TOKEN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
    ))?
    .execute(params![
        t.id,
        t.prefix,
        t.hash.as_slice(),
        t.owner,
        scopes.join(" "),
        super::log_text(&t.description),
        t.created_at,
        t.expires_at,
        t.revoked_at
    ])?;
    Ok(())
}

pub fn revoke_token(
    c: &Connection,
    id: &str,
    now: Millis,
) -> rusqlite::Result<Option<TokenRecord>> {
    c.prepare_cached(&format!(
        "UPDATE tokens SET revoked_at = coalesce(revoked_at, ?2) WHERE id = ?1 RETURNING {TOKEN_COLUMNS}"
    ))?
    .query_row(params![id, now], token_from_row)
    .optional()
}

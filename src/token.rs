//! API tokens: what they may do ([`Scope`]), for whom (an optional owner),
//! and how they are kept. The token itself is shown once, at creation; the
//! store only ever holds its SHA-256, so a leaked database leaks no token.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::event::Millis;

/// What a token may do. `Admin` is everything, for every owner.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub enum Scope {
    #[serde(rename = "events:write")]
    EventsWrite,
    #[serde(rename = "webhooks:read")]
    WebhooksRead,
    #[serde(rename = "webhooks:write")]
    WebhooksWrite,
    #[serde(rename = "deliveries:read")]
    DeliveriesRead,
    #[serde(rename = "deliveries:replay")]
    DeliveriesReplay,
    #[serde(rename = "plugins:read")]
    PluginsRead,
    #[serde(rename = "sources:read")]
    SourcesRead,
    #[serde(rename = "sources:write")]
    SourcesWrite,
    #[serde(rename = "admin")]
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 9] = [
        Scope::EventsWrite,
        Scope::WebhooksRead,
        Scope::WebhooksWrite,
        Scope::DeliveriesRead,
        Scope::DeliveriesReplay,
        Scope::PluginsRead,
        Scope::SourcesRead,
        Scope::SourcesWrite,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::EventsWrite => "events:write",
            Scope::WebhooksRead => "webhooks:read",
            Scope::WebhooksWrite => "webhooks:write",
            Scope::DeliveriesRead => "deliveries:read",
            Scope::DeliveriesReplay => "deliveries:replay",
            Scope::PluginsRead => "plugins:read",
            Scope::SourcesRead => "sources:read",
            Scope::SourcesWrite => "sources:write",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes; `Admin` implies every other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes(u16);

impl Scopes {
    pub fn of(list: &[Scope]) -> Scopes {
        Scopes(list.iter().fold(0, |acc, s| acc | s.bit()))
    }

    pub fn all() -> Scopes {
        Scopes::of(&Scope::ALL)
    }

    pub fn with(self, s: Scope) -> Scopes {
        Scopes(self.0 | s.bit())
    }

    pub fn without(self, s: Scope) -> Scopes {
        Scopes(self.0 & !s.bit())
    }

    pub fn has(self, s: Scope) -> bool {
        self.0 & s.bit() != 0 || (s != Scope::EventsWrite && self.0 & Scope::Admin.bit() != 0)
    }
}

/// A token as stored: never the token itself.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRecord {
    /// `tok_<ulid>`: how the token is listed and revoked.
    pub id: String,
    /// The token's first characters, to recognise it in a list.
    pub prefix: String,
    /// SHA-256 of the token.
    pub hash: [u8; 32],
    /// Only this owner's webhooks and deliveries; `None` = every owner.
    pub owner: Option<String>,
    pub scopes: Vec<Scope>,
    pub description: String,
    pub created_at: Millis,
    pub expires_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
}

impl TokenRecord {
    pub fn scopes(&self) -> Scopes {
        let s = Scopes::of(&self.scopes);
        // An admin token may post events too.
        if self.scopes.contains(&Scope::Admin) {
            s.with(Scope::EventsWrite)
        } else {
            s
        }
    }

    /// Whether it may be used at `now`.
    pub fn live(&self, now: Millis) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|t| t > now)
    }
}

/// Characters of a token kept as its prefix: `weir_` and 8 of its own.
const PREFIX_LEN: usize = 13;

/// A new token: its text (shown once) and its record.
pub fn issue(
    owner: Option<String>,
    scopes: Vec<Scope>,
    description: String,
    now: Millis,
    expires_at: Option<Millis>,
) -> (String, TokenRecord) {
    let secret: [u8; 24] = rand::random();
    let text = format!("weir_{}", hex::encode(secret));
    let record = TokenRecord {
        id: format!("tok_{}", ulid::Ulid::new().to_string().to_lowercase()),
        prefix: text[..PREFIX_LEN].to_owned(),
        hash: hash(&text),
        owner,
        scopes,
        description,
        created_at: now,
        expires_at,
        revoked_at: None,
    };
    (text, record)
}

pub fn hash(token: &str) -> [u8; 32] {
    sha2::Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_implies_every_scope_but_a_scope_alone_is_only_itself() {
        let admin = Scopes::of(&[Scope::Admin]);
        assert!(
            Scope::ALL
                .iter()
                .all(|s| *s == Scope::EventsWrite || admin.has(*s))
        );
        let read = Scopes::of(&[Scope::WebhooksRead]);
        assert!(read.has(Scope::WebhooksRead));
        assert!(!read.has(Scope::WebhooksWrite));
        assert!(!read.has(Scope::Admin));
    }

    #[test]
    fn issued_tokens_are_kept_only_as_hashes() {
        let (text, rec) = issue(None, vec![Scope::Admin], String::new(), 0, None);
        assert!(text.starts_with("weir_") && text.len() == 53);
        assert!(text.starts_with(&rec.prefix));
        assert_eq!(rec.hash, hash(&text));
        assert!(!format!("{rec:?}").contains(&text[PREFIX_LEN..]));
        assert!(rec.live(0));
    }
}

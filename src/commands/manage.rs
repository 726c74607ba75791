//! `weir webhooks …` and `weir token …`: the management API from the shell,
//! a table for people and `--json` for scripts.

use std::io::Read as _;

use reqwest::Method;
use serde_json::{Map, Value, json};

use super::remote::{Role, Server, print_json};
use super::{Failure, user};
use crate::api;
use crate::cli::{SourcesCommand, SpecArgs, TokenCommand, WebhooksCommand};

pub async fn webhooks(command: WebhooksCommand) -> Result<(), Failure> {
    match command {
        WebhooksCommand::List {
            owner,
            limit,
            json,
            remote,
        } => {
            let server = Server::find(&remote, Role::Admin);
            let mut query = vec![("limit", limit.to_string())];
            query.extend(owner.map(|o| ("owner", o)));
            let list: api::WebhookList = server
                .call(server.request(Method::GET, "/v1/webhooks").query(&query))
                .await?;
            if json {
                return print_json(&list);
            }
            println!(
                "{:<24} {:<7} {:<7} {:>6}  {:<40} EVENTS",
                "ID", "SOURCE", "ACTIVE", "QUEUE", "URL"
            );
            for w in &list.webhooks {
                println!(
                    "{:<24} {:<7} {:<7} {:>6}  {:<40} {}",
                    w.id,
                    source(w),
                    if w.active { "yes" } else { "no" },
                    w.queue_depth,
                    w.url,
                    w.events.join(",")
                );
            }
            if let Some(next) = &list.next {
                eprintln!("(more after {next})");
            }
            Ok(())
        }
        WebhooksCommand::Get { id, json, remote } => {
            let server = Server::find(&remote, Role::Admin);
            let w: api::Webhook = server
                .call(server.request(Method::GET, &format!("/v1/webhooks/{id}")))
                .await?;
            if json {
                return print_json(&w);
            }
            show(&w);
            Ok(())
        }
        WebhooksCommand::Create { spec, json, remote } => {
            let server = Server::find(&remote, Role::Admin);
            let body = spec_body(&spec)?;
            let created: api::WebhookCreated = server
                .call(server.request(Method::POST, "/v1/webhooks").json(&body))
                .await?;
            if json {
                return print_json(&created);
            }
            show(&created.webhook);
            println!(
                "secret:       {}   (shown once: keep it to verify signatures)",
                created.secret
            );
            Ok(())
        }
        WebhooksCommand::Update {
            webhook: id,
            spec,
            active,
            json,
            remote,
        } => {
            let server = Server::find(&remote, Role::Admin);
            let mut body = spec_body(&spec)?;
            if let Some(a) = active {
                body.insert("active".into(), json!(a));
            }
            if body.is_empty() {
                return Err(user(
                    "nothing to change: give --body or a key such as --endpoint",
                ));
            }
            let w: api::Webhook = server
                .call(
                    server
                        .request(Method::PATCH, &format!("/v1/webhooks/{id}"))
                        .json(&body),
                )
                .await?;
            if json {
                return print_json(&w);
            }
            show(&w);
            Ok(())
        }
        WebhooksCommand::Delete { id, json, remote } => {
            let server = Server::find(&remote, Role::Admin);
            let d: api::WebhookDeleted = server
                .call(server.request(Method::DELETE, &format!("/v1/webhooks/{id}")))
                .await?;
            if json {
                return print_json(&d);
            }
            println!(
                "deleted {} ({} pending deliveries canceled)",
                d.id, d.canceled
            );
            Ok(())
        }
        WebhooksCommand::RotateSecret {
            id,
            overlap_secs,
            json,
            remote,
        } => {
            let server = Server::find(&remote, Role::Admin);
            let r: api::SecretRotated = server
                .call(
                    server
                        .request(Method::POST, &format!("/v1/webhooks/{id}/secret/rotate"))
                        .json(&api::RotateSecret { overlap_secs }),
                )
                .await?;
            if json {
                return print_json(&r);
            }
            println!("new secret:   {}   (shown once)", r.secret);
            match &r.previous_expires_at {
                Some(t) => println!("the previous secret signs beside it until {t}"),
                None => println!("there was no previous secret"),
            }
            Ok(())
        }
    }
}

fn source(w: &api::Webhook) -> &'static str {
    match w.source {
        crate::config::Source::Config => "config",
        crate::config::Source::Api => "api",
    }
}

fn show(w: &api::Webhook) {
    println!("id:           {} ({})", w.id, source(w));
    println!("url:          {}", w.url);
    if !w.description.is_empty() {
        println!("description:  {}", w.description);
    }
    println!("events:       {}", w.events.join(", "));
    if let Some(o) = &w.owners {
        println!("owners:       {}", o.join(", "));
    }
    let state = match &w.disabled_reason {
        Some(why) => format!("disabled: {why}"),
        None if w.active => "active".into(),
        None => "inactive".into(),
    };
    println!("state:        {state}, {} queued", w.queue_depth);
    let plugins: Vec<&str> = w.plugins.iter().map(|p| p.name.as_str()).collect();
    if !plugins.is_empty() {
        println!("plugins:      {}", plugins.join(" → "));
    }
    println!("signed:       {}", if w.signed { "yes" } else { "no" });
}

/// The JSON object the flags (and `--body`) describe.
fn spec_body(spec: &SpecArgs) -> Result<Map<String, Value>, Failure> {
    let mut body = match &spec.body {
        None => Map::new(),
        Some(src) => {
            let text = if src == "-" {
                let mut t = String::new();
                std::io::stdin()
                    .read_to_string(&mut t)
                    .map_err(|e| user(format!("stdin: {e}")))?;
                t
            } else {
                std::fs::read_to_string(src)
                    .map_err(|e| user(format!("{src}: cannot read: {e}")))?
            };
            match serde_json::from_str(&text) {
                Ok(Value::Object(m)) => m,
                Ok(_) => return Err(user(format!("{src}: a webhook spec is a JSON object"))),
                Err(e) => return Err(user(format!("{src}: not JSON: {e}"))),
            }
        }
    };
    let mut set = |k: &str, v: Value| {
        body.insert(k.to_owned(), v);
    };
    if let Some(v) = &spec.id {
        set("id", json!(v));
    }
    if let Some(v) = &spec.endpoint {
        set("url", json!(v));
    }
    if !spec.events.is_empty() {
        set("events", json!(spec.events));
    }
    if !spec.owners.is_empty() {
        set("owners", json!(spec.owners));
    }
    if let Some(v) = &spec.description {
        set("description", json!(v));
    }
    if !spec.secrets.is_empty() {
        set("secrets", json!(spec.secrets));
    }
    Ok(body)
}

pub async fn token(command: TokenCommand) -> Result<(), Failure> {
    match command {
        TokenCommand::Create {
            owner,
            scopes,
            expires_in_days,
            description,
            json,
            remote,
        } => {
            let server = Server::find(&remote, Role::Admin);
            let scopes = scopes
                .iter()
                .map(|s| {
                    crate::token::Scope::parse(s).ok_or_else(|| {
                        let all: Vec<&str> = crate::token::Scope::ALL
                            .iter()
                            .map(|s| s.as_str())
                            .collect();
                        user(format!("--scope {s:?} is not one of {}", all.join(", ")))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let expires_at = expires_in_days.map(|d| {
                crate::event::rfc3339(crate::event::now_millis() + i64::from(d) * 86_400_000)
            });
            let req = api::TokenRequest {
                owner,
                scopes,
                expires_at,
                description,
            };
            let created: api::TokenCreated = server
                .call(server.request(Method::POST, "/v1/tokens").json(&req))
                .await?;
            if json {
                return print_json(&created);
            }
            println!("{}", created.token);
            eprintln!(
                "token {} ({}): shown once, keep it safe",
                created.view.id,
                scopes_text(&created.view.scopes)
            );
            Ok(())
        }
        TokenCommand::List { json, remote } => {
            let server = Server::find(&remote, Role::Admin);
            let list: api::TokenList = server
                .call(server.request(Method::GET, "/v1/tokens"))
                .await?;
            if json {
                return print_json(&list);
            }
            println!(
                "{:<30} {:<14} {:<16} {:<9} SCOPES",
                "ID", "PREFIX", "OWNER", "STATE"
            );
            for t in &list.tokens {
                let state = if t.revoked_at.is_some() {
                    "revoked"
                } else if t.expires_at.is_some() {
                    "expiring"
                } else {
                    "live"
                };
                println!(
                    "{:<30} {:<14} {:<16} {:<9} {}",
                    t.id,
                    t.prefix,
                    t.owner.as_deref().unwrap_or("(every)"),
                    state,
                    scopes_text(&t.scopes)
                );
            }
            Ok(())
        }
        TokenCommand::Revoke { id, json, remote } => {
            let server = Server::find(&remote, Role::Admin);
            let t: api::TokenView = server
                .call(server.request(Method::DELETE, &format!("/v1/tokens/{id}")))
                .await?;
            if json {
                return print_json(&t);
            }
            println!("revoked {} ({})", t.id, t.prefix);
            Ok(())
        }
    }
}

fn scopes_text(scopes: &[crate::token::Scope]) -> String {
    let names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    names.join(" ")
}

pub async fn sources(command: SourcesCommand) -> Result<(), Failure> {
    match command {
        SourcesCommand::List { json, remote } => {
            let server = Server::find(&remote, Role::Admin);
            let list: api::SourceList = server
                .call(server.request(Method::GET, "/v1/sources"))
                .await?;
            if json {
                return print_json(&list);
            }
            println!(
                "{:<24} {:<7} {:<18} {:<16} {:<16} PATH",
                "ID", "SOURCE", "VERIFY", "OWNER", "PLUGIN"
            );
            for s in &list.sources {
                println!(
                    "{:<24} {:<7} {:<18} {:<16} {:<16} {}",
                    s.id,
                    match s.source {
                        crate::config::Source::Config => "config",
                        crate::config::Source::Api => "api",
                    },
                    s.verify,
                    s.owner_id.as_deref().unwrap_or("-"),
                    s.plugin.as_deref().unwrap_or("-"),
                    s.path
                );
            }
            Ok(())
        }
        SourcesCommand::Create { spec, json, remote } => {
            let server = Server::find(&remote, Role::Admin);
            let text = if spec == "-" {
                let mut t = String::new();
                std::io::stdin()
                    .read_to_string(&mut t)
                    .map_err(|e| user(format!("cannot read stdin: {e}")))?;
                t
            } else {
                spec
            };
            let body: Value = serde_json::from_str(&text)
                .map_err(|e| user(format!("the source is not JSON: {e}")))?;
            let created: api::InboundSource = server
                .call(server.request(Method::POST, "/v1/sources").json(&body))
                .await?;
            if json {
                return print_json(&created);
            }
            println!("created source {} at {}", created.id, created.path);
            Ok(())
        }
        SourcesCommand::Delete { id, json, remote } => {
            let server = Server::find(&remote, Role::Admin);
            let gone: api::SourceDeleted = server
                .call(server.request(Method::DELETE, &format!("/v1/sources/{id}")))
                .await?;
            if json {
                return print_json(&gone);
            }
            println!("deleted source {}", gone.id);
            Ok(())
        }
        SourcesCommand::Requests {
            id,
            state,
            limit,
            json,
            remote,
        } => {
            let server = Server::find(&remote, Role::Admin);
            let mut query = vec![("limit", limit.to_string())];
            query.extend(state.map(|s| ("state", s)));
            let list: api::CaughtRequestList = server
                .call(
                    server
                        .request(Method::GET, &format!("/v1/sources/{id}/requests"))
                        .query(&query),
                )
                .await?;
            if json {
                return print_json(&list);
            }
            println!(
                "{:<31} {:<25} {:<7} {:>8}  EVENTS / REASON",
                "REQUEST", "RECEIVED", "STATE", "BYTES"
            );
            for r in &list.requests {
                let what = match &r.reason {
                    Some(reason) => super::printable(reason),
                    None => r.events.join(",").into(),
                };
                println!(
                    "{:<31} {:<25} {:<7} {:>8}  {}",
                    r.id,
                    r.received_at,
                    r.state.as_str(),
                    r.body_bytes,
                    what
                );
            }
            for r in &list.refused {
                println!(
                    "{:<31} {:<25} {:<7} {:>8}  {}",
                    "(refused)",
                    r.at,
                    "-",
                    r.body.len(),
                    super::printable(&r.reason)
                );
            }
            Ok(())
        }
        SourcesCommand::Request {
            id,
            request,
            json,
            remote,
        } => {
            let server = Server::find(&remote, Role::Admin);
            let r: api::CaughtRequestDetail = server
                .call(server.request(Method::GET, &format!("/v1/sources/{id}/requests/{request}")))
                .await?;
            if json {
                return print_json(&r);
            }
            println!(
                "{} {}",
                r.request.method,
                super::printable(&r.request.target)
            );
            for (n, v) in &r.headers {
                println!("{n}: {}", super::printable(v));
            }
            println!();
            println!("{}", super::printable(&r.body));
            Ok(())
        }
        SourcesCommand::Replay {
            id,
            request,
            json,
            remote,
        } => {
            let server = Server::find(&remote, Role::Admin);
            let r: api::InboundReplayed = server
                .call(server.request(
                    Method::POST,
                    &format!("/v1/sources/{id}/requests/{request}/replay"),
                ))
                .await?;
            if json {
                return print_json(&r);
            }
            println!("{} is pending again", r.id);
            Ok(())
        }
    }
}

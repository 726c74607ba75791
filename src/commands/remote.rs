//! CLI commands that talk to a running weir over its HTTP API.

use std::io::Read as _;

use serde_json::Value;

use super::{Failure, user};
use crate::api;
use crate::cli::Remote;

/// Which token a command needs when none is given.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Ingest,
}

/// A running weir, found from flags, the environment or the local config.
pub struct Server {
    url: String,
    token: Option<String>,
    client: reqwest::Client,
}

/// What the CLI reads of a config file to find the server: no validation,
/// so a config with problems still says where weir listens.
#[derive(serde::Deserialize, Default)]
struct Local {
    #[serde(default)]
    server: LocalServer,
}

#[derive(serde::Deserialize, Default)]
struct LocalServer {
    listen: Option<String>,
    admin_token: Option<String>,
    ingest_token: Option<String>,
}

impl Server {
    pub fn find(remote: &Remote, role: Role) -> Server {
        let local: Local = std::fs::read_to_string(&remote.config)
            .ok()
            .and_then(|t| toml::from_str(&t).ok())
            .unwrap_or_default();
        let url = remote.url.clone().unwrap_or_else(|| {
            let listen = local.server.listen.as_deref().unwrap_or("127.0.0.1:8700");
            // A wildcard listen address is reached on loopback.
            let listen = listen
                .replace("0.0.0.0:", "127.0.0.1:")
                .replace("[::]:", "[::1]:");
            format!("http://{listen}")
        });
        let from_env = |var: &str| std::env::var(var).ok().filter(|t| !t.is_empty());
        let token = remote.token.clone().or_else(|| match role {
            Role::Admin => from_env("WEIR_ADMIN_TOKEN").or(local.server.admin_token),
            Role::Ingest => from_env("WEIR_INGEST_TOKEN").or(local.server.ingest_token),
        });
        Server {
            url: url.trim_end_matches('/').to_owned(),
            token: token.filter(|t| !t.is_empty()),
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(60))
                .build()
                .expect("client builds"),
        }
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.client.request(method, format!("{}{path}", self.url));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// Sends `req` and returns its JSON answer as `T`, turning error answers
    /// into one line.
    pub async fn call<T: serde::de::DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, Failure> {
        let res = req
            .send()
            .await
            .map_err(|e| user(format!("cannot reach weir at {}: {e}", self.url)))?;
        let status = res.status();
        let bytes = res.bytes().await.unwrap_or_default();
        if !status.is_success() {
            let (code, msg) = match serde_json::from_slice::<crate::api::ErrorBody>(&bytes) {
                Ok(b) => (b.error.code, b.error.message),
                Err(_) => ("error".into(), "no error message".into()),
            };
            return Err(user(format!("weir answered {status}: {code}: {msg}")));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            Failure::Internal(anyhow::anyhow!("weir's answer was not understood: {e}"))
        })
    }
}

/// Splits a file into events: a JSON object, a JSON array, or one event per line.
pub fn read_events(text: &str) -> Result<Vec<Value>, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        return serde_json::from_str(trimmed)
            .map_err(|e| format!("not a JSON array of events: {e}"));
    }
    if let Ok(one) = serde_json::from_str::<Value>(trimmed) {
        return Ok(vec![one]);
    }
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}

pub async fn send(file: &str, remote: &Remote, batch: usize) -> Result<(), Failure> {
    let server = Server::find(remote, Role::Ingest);
    let mut text = String::new();
    if file == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| user(format!("stdin: {e}")))?;
    } else {
        text =
            std::fs::read_to_string(file).map_err(|e| user(format!("{file}: cannot read: {e}")))?;
    }
    let events = read_events(&text).map_err(|e| user(format!("{file}: {e}")))?;
    let batch = batch.clamp(1, crate::ingest::envelope::MAX_BATCH);
    let progress = progress_bar(events.len() as u64, "events");
    let mut ids = Vec::new();
    for chunk in events.chunks(batch) {
        let body = Value::Array(chunk.to_vec());
        let answer: api::Accepted = server
            .call(
                server
                    .request(reqwest::Method::POST, "/v1/events")
                    .json(&body),
            )
            .await
            .map_err(|e| match e {
                Failure::User(mut l) => {
                    l[0] = format!("after {} accepted events: {}", ids.len(), l[0]);
                    Failure::User(l)
                }
                other => other,
            })?;
        ids.extend(answer.ids);
        progress.inc(chunk.len() as u64);
    }
    progress.finish_and_clear();
    if ids.len() == 1 {
        println!("{}", ids[0]);
    } else {
        println!("accepted {} events", ids.len());
    }
    Ok(())
}

pub async fn deliveries(
    webhook: Option<String>,
    status: Option<String>,
    event: Option<String>,
    limit: usize,
    json: bool,
    remote: &Remote,
) -> Result<(), Failure> {
    let server = Server::find(remote, Role::Admin);
    let mut query = vec![("limit", limit.to_string())];
    query.extend(webhook.map(|w| ("webhook", w)));
    query.extend(status.map(|s| ("status", s)));
    query.extend(event.map(|e| ("event", e)));
    let answer: api::DeliveryList = server
        .call(
            server
                .request(reqwest::Method::GET, "/v1/deliveries")
                .query(&query),
        )
        .await?;
    if json {
        return print_json(&answer);
    }
    println!(
        "{:<30} {:<20} {:<10} {:>8} {:<24} EVENT / REASON",
        "DELIVERY", "WEBHOOK", "STATUS", "ATTEMPTS", "UPDATED"
    );
    for r in &answer.deliveries {
        let detail = match &r.reason {
            Some(reason) => format!("{} ({reason})", r.event_id),
            None => r.event_id.clone(),
        };
        println!(
            "{:<30} {:<20} {:<10} {:>8} {:<24} {}",
            r.id,
            r.webhook,
            r.status.as_str(),
            r.attempts,
            r.updated_at,
            detail
        );
    }
    if let Some(next) = &answer.next {
        eprintln!("(more: --after {next} via the API)");
    }
    Ok(())
}

pub async fn replay(
    delivery: Option<String>,
    webhook: Option<String>,
    status: Option<String>,
    since: Option<String>,
    json: bool,
    remote: &Remote,
) -> Result<(), Failure> {
    let server = Server::find(remote, Role::Admin);
    match (delivery, webhook, status) {
        (Some(id), None, None) => {
            let path = format!("/v1/deliveries/{id}/replay");
            let answer: api::Replayed = server
                .call(server.request(reqwest::Method::POST, &path))
                .await?;
            if json {
                return print_json(&answer);
            }
            println!("replayed {}", answer.id);
        }
        (None, Some(webhook), Some(status)) => {
            let spinner = progress_bar(0, "replaying");
            let body = serde_json::json!({"webhook": webhook, "status": status, "since": since});
            let answer: Result<api::BulkReplayed, _> = server
                .call(
                    server
                        .request(reqwest::Method::POST, "/v1/replay")
                        .json(&body),
                )
                .await;
            spinner.finish_and_clear();
            let answer = answer?;
            if json {
                return print_json(&answer);
            }
            println!("replayed {} deliveries", answer.replayed);
        }
        _ => return Err(user("give a delivery id, or --webhook ID --status S")),
    }
    Ok(())
}

pub fn print_json(v: &impl serde::Serialize) -> Result<(), Failure> {
    println!("{}", serde_json::to_string_pretty(v).expect("JSON"));
    Ok(())
}

fn progress_bar(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = if len == 0 {
        indicatif::ProgressBar::new_spinner()
    } else {
        indicatif::ProgressBar::new(len)
    };
    let style = if len == 0 {
        indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}")
    } else {
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg} ({per_sec}, eta {eta})")
    };
    bar.set_style(style.expect("valid template"));
    bar.set_message(what.to_owned());
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    if len == 0 {
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
    }
    bar
}

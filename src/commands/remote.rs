//! CLI commands that talk to a running weir over its HTTP API.

use std::io::Read as _;

use serde_json::Value;

use super::{Failure, user};
use crate::cli::Remote;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .expect("client builds")
}

fn request(remote: &Remote, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    let url = format!("{}{path}", remote.url.trim_end_matches('/'));
    let req = client().request(method, url);
    match &remote.token {
        Some(t) => req.bearer_auth(t),
        None => req,
    }
}

/// Sends `req` and returns the JSON answer, turning error answers into one line.
async fn call(remote: &Remote, req: reqwest::RequestBuilder) -> Result<Value, Failure> {
    let res = req
        .send()
        .await
        .map_err(|e| user(format!("cannot reach weir at {}: {e}", remote.url)))?;
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(body);
    }
    let msg = body["error"]["message"]
        .as_str()
        .unwrap_or("no error message");
    let code = body["error"]["code"].as_str().unwrap_or("error");
    Err(user(format!("weir answered {status}: {code}: {msg}")))
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
        let answer = call(
            remote,
            request(remote, reqwest::Method::POST, "/v1/events").json(&body),
        )
        .await
        .map_err(|e| match e {
            Failure::User(mut l) => {
                l[0] = format!("after {} accepted events: {}", ids.len(), l[0]);
                Failure::User(l)
            }
            other => other,
        })?;
        ids.extend(answer["ids"].as_array().cloned().unwrap_or_default());
        progress.inc(chunk.len() as u64);
    }
    progress.finish_and_clear();
    if ids.len() == 1 {
        println!("{}", ids[0].as_str().unwrap_or_default());
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
    let mut query = vec![("limit", limit.to_string())];
    query.extend(webhook.map(|w| ("webhook", w)));
    query.extend(status.map(|s| ("status", s)));
    query.extend(event.map(|e| ("event", e)));
    let answer = call(
        remote,
        request(remote, reqwest::Method::GET, "/v1/deliveries").query(&query),
    )
    .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&answer).expect("JSON"));
        return Ok(());
    }
    let rows = answer["deliveries"].as_array().cloned().unwrap_or_default();
    println!(
        "{:<30} {:<20} {:<10} {:>8} {:<24} EVENT / REASON",
        "DELIVERY", "WEBHOOK", "STATUS", "ATTEMPTS", "UPDATED"
    );
    for r in &rows {
        let s = |k: &str| r[k].as_str().unwrap_or("-").to_owned();
        let detail = match r["reason"].as_str() {
            Some(reason) => format!("{} ({reason})", s("event_id")),
            None => s("event_id"),
        };
        println!(
            "{:<30} {:<20} {:<10} {:>8} {:<24} {}",
            s("id"),
            s("webhook"),
            s("status"),
            r["attempts"],
            s("updated_at"),
            detail
        );
    }
    if let Some(next) = answer["next"].as_str() {
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
    let answer = match (delivery, webhook, status) {
        (Some(id), None, None) => {
            let path = format!("/v1/deliveries/{id}/replay");
            call(remote, request(remote, reqwest::Method::POST, &path)).await?
        }
        (None, Some(webhook), Some(status)) => {
            let spinner = progress_bar(0, "replaying");
            let body = serde_json::json!({"webhook": webhook, "status": status, "since": since});
            let a = call(
                remote,
                request(remote, reqwest::Method::POST, "/v1/replay").json(&body),
            )
            .await;
            spinner.finish_and_clear();
            a?
        }
        _ => return Err(user("give a delivery id, or --webhook ID --status S")),
    };
    if json {
        println!("{answer}");
    } else if let Some(n) = answer["replayed"].as_u64() {
        println!("replayed {n} deliveries");
    } else {
        println!("replayed {}", answer["id"].as_str().unwrap_or_default());
    }
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

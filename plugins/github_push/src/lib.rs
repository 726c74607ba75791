//! `github_push`: a source plugin for GitHub repository webhooks.
//!
//! - A `push` delivery becomes one `commit.push` event per commit, with id
//!   `<X-GitHub-Delivery>:<commit id>` (so a redelivery from GitHub is
//!   recognised as a duplicate), `occurred-at` the commit's timestamp, and
//!   data `{"repository", "ref", "commit", "message", "author", "url"}`
//!   (`author` as GitHub sends it: `name`, `email`, `username`). A push
//!   without commits (a deleted branch, a tag) becomes no event.
//! - A `ping` (sent once when the webhook is created) becomes no event.
//! - Any other event `E` becomes one event of type `github.E`, id the
//!   delivery id, data the body as it came.
//!
//! Config: `owner_id` (optional): the owner id every event gets.
//!
//! Configure the GitHub webhook with content type `application/json`. A
//! request without the `X-GitHub-Event` and `X-GitHub-Delivery` headers, a
//! body that is not JSON, or a config that is not JSON or has an unknown key
//! is an `err`. Verifying GitHub's signature is weir's job, before the call.

use serde::Deserialize;
use serde_json::{Value, json};

wit_bindgen::generate!({ path: "../../wit", world: "source" });

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    owner_id: Option<String>,
}

/// The parts of a push payload the events carry; the rest is skipped.
#[derive(Deserialize)]
struct Push {
    #[serde(rename = "ref")]
    git_ref: String,
    repository: Repository,
    #[serde(default)]
    commits: Vec<Commit>,
}

#[derive(Deserialize)]
struct Repository {
    full_name: String,
}

#[derive(Deserialize)]
struct Commit {
    id: String,
    message: String,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    url: Option<String>,
    /// Passed on as sent.
    author: Value,
}

struct GithubPush;

impl Guest for GithubPush {
    fn map_request(request: Incoming, config: String) -> Result<Vec<EventDraft>, String> {
        let config: Config = serde_json::from_str(&config).map_err(|e| format!("github_push config: {e}"))?;
        let event = header(&request, "x-github-event")?;
        let delivery = header(&request, "x-github-delivery")?;
        let body = std::str::from_utf8(&request.body)
            .map_err(|_| "the body is not UTF-8; set the GitHub webhook's content type to application/json".to_owned())?;
        let mut events = to_events(event, delivery, body)?;
        for e in &mut events {
            e.owner_id.clone_from(&config.owner_id);
        }
        Ok(events)
    }
}

/// The one value of header `name` (lower case), as text.
fn header<'a>(request: &'a Incoming, name: &str) -> Result<&'a str, String> {
    let (_, value) = request
        .headers
        .iter()
        .find(|(n, _)| n == name)
        .ok_or_else(|| format!("no {name} header: not a GitHub webhook delivery"))?;
    std::str::from_utf8(value).map_err(|_| format!("the {name} header is not text"))
}

/// The events a delivery of GitHub event `event` with id `delivery` stands for.
fn to_events(event: &str, delivery: &str, body: &str) -> Result<Vec<EventDraft>, String> {
    match event {
        "ping" => Ok(Vec::new()),
        "push" => {
            let push: Push = serde_json::from_str(body).map_err(|e| format!("push payload: {e}"))?;
            Ok(push.commits.iter().map(|c| commit_event(&push, c, delivery)).collect())
        }
        other => {
            let name_ok = !other.is_empty()
                && other.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !name_ok {
                return Err(format!("unexpected X-GitHub-Event {other:?}"));
            }
            serde_json::from_str::<serde::de::IgnoredAny>(body).map_err(|e| format!("{other} payload: {e}"))?;
            Ok(vec![EventDraft {
                id: Some(delivery.to_owned()),
                event_type: format!("github.{other}"),
                owner_id: None,
                data: body.to_owned(),
                occurred_at: None,
            }])
        }
    }
}

fn commit_event(push: &Push, commit: &Commit, delivery: &str) -> EventDraft {
    let data = json!({
        "repository": push.repository.full_name,
        "ref": push.git_ref,
        "commit": commit.id,
        "message": commit.message,
        "author": commit.author,
        "url": commit.url,
    });
    EventDraft {
        id: Some(format!("{delivery}:{}", commit.id)),
        event_type: "commit.push".into(),
        owner_id: None,
        data: data.to_string(),
        occurred_at: commit.timestamp.clone(),
    }
}

export!(GithubPush);

#[cfg(test)]
mod tests {
    use super::to_events;

    const PUSH: &str = r#"{
        "ref": "refs/heads/main",
        "repository": {"full_name": "octo/hello", "private": false},
        "pusher": {"name": "octo"},
        "commits": [
            {"id": "a1", "message": "First\n\n\"quoted\"", "timestamp": "2026-03-01T10:00:00+01:00",
             "url": "https://github.com/octo/hello/commit/a1",
             "author": {"name": "Octo Cat", "email": "octo@example.com", "username": "octo"}},
            {"id": "b2", "message": "Second", "timestamp": "2026-03-01T10:05:00+01:00",
             "author": {"name": "Octo Cat", "email": "octo@example.com"}}
        ]
    }"#;

    #[test]
    fn a_push_is_one_event_per_commit() {
        let events = to_events("push", "d-1", PUSH).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].id.as_deref(), Some("d-1:a1"));
        assert_eq!(events[0].event_type, "commit.push");
        assert_eq!(events[0].occurred_at.as_deref(), Some("2026-03-01T10:00:00+01:00"));
        let data: serde_json::Value = serde_json::from_str(&events[0].data).unwrap();
        assert_eq!(
            data,
            serde_json::json!({
                "repository": "octo/hello",
                "ref": "refs/heads/main",
                "commit": "a1",
                "message": "First\n\n\"quoted\"",
                "author": {"name": "Octo Cat", "email": "octo@example.com", "username": "octo"},
                "url": "https://github.com/octo/hello/commit/a1",
            })
        );
        assert_eq!(events[1].id.as_deref(), Some("d-1:b2"));
    }

    #[test]
    fn ping_is_nothing_and_other_events_pass_whole() {
        assert!(to_events("ping", "d-2", r#"{"zen": "Keep it simple."}"#).unwrap().is_empty());
        let events = to_events("issues", "d-3", r#"{"action": "opened"}"#).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event_type, "github.issues");
        assert_eq!(events[0].id.as_deref(), Some("d-3"));
        assert_eq!(events[0].data, r#"{"action": "opened"}"#);
    }

    #[test]
    fn what_is_not_a_github_delivery_is_an_err() {
        assert!(to_events("push", "d", "payload=%7B%7D").unwrap_err().starts_with("push payload"));
        assert!(to_events("Bad Event", "d", "{}").is_err());
        assert!(to_events("issues", "d", "{oops").is_err());
        let no_commits = r#"{"ref": "refs/tags/v1", "repository": {"full_name": "o/r"}, "commits": []}"#;
        assert!(to_events("push", "d", no_commits).unwrap().is_empty());
    }
}

//! Source plugins at the `Plugins` level, no server: the built guest
//! components mapped over requests, what comes back checked, hostile ones
//! contained, and the two kinds of plugin kept apart.

// `common` re-exports what `both_stores!` needs; these tests use no store.
#[allow(unused_imports)]
mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{example_plugin, test_plugin};
use serde_json::{Value, json};
use weir::config::PluginLimits;
use weir::event::Event;
use weir::metrics::Metrics;
use weir::plugin::{
    CallContext, EventDraft, Incoming, PluginError, PluginKind, PluginStatus, Plugins,
};
use weir::store::Rendered;

/// A host with a generous deadline (tests run unoptimised and in parallel)
/// that has loaded `names` from the test plugins.
fn host(timeout_ms: u64, names: &[&str]) -> (Plugins, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    let limits = PluginLimits {
        timeout: Duration::from_millis(timeout_ms),
        ..PluginLimits::DEFAULT
    };
    let plugins = Plugins::with_limits(limits, metrics.clone()).unwrap();
    for name in names {
        load(&plugins, &test_plugin(name));
    }
    (plugins, metrics)
}

fn load(plugins: &Plugins, path: &Path) {
    plugins
        .load_file(path)
        .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
}

fn request(body: &str, headers: &[(&str, &str)]) -> Incoming {
    Incoming {
        method: "POST".into(),
        path: "/in/shop".into(),
        query: "via=test".into(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect(),
        body: body.as_bytes().to_vec(),
    }
}

fn fanout(n: usize) -> Incoming {
    request(&format!(r#"{{"n": {n}, "type": "x.y"}}"#), &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_maps_one_request_to_many_events_with_what_the_request_held() {
    let (plugins, metrics) = host(2000, &["source_fanout"]);
    let req = request(
        r#"{"n": 3, "type": "order.create"}"#,
        &[("content-type", "application/json"), ("x-test", "hello")],
    );
    let (result, logs) = plugins
        .map_request_capturing_logs("source_fanout", &req, r#"{"k": 1}"#, "shop")
        .await;
    let events = result.unwrap();
    assert_eq!(events.len(), 3);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.id, Some(i.to_string()));
        assert_eq!(e.event_type, "order.create");
        assert_eq!(
            (e.owner_id.as_deref(), e.occurred_at.as_deref()),
            (None, None)
        );
        let data: Value = serde_json::from_str(&e.data).unwrap();
        assert_eq!(
            data,
            json!({
                "i": i,
                "method": "POST",
                "path": "/in/shop",
                "query": "via=test",
                "header": "hello",
                "config": {"k": 1},
            })
        );
    }
    assert_eq!(logs, vec!["info: fanning out 3".to_owned()]);
    let text = metrics.render();
    assert!(
        text.contains(r#"weir_plugin_calls_total{plugin="source_fanout",result="mapped"} 1"#),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_output_is_bounded_and_errs_pass_through() {
    let (plugins, metrics) = host(2000, &["source_fanout"]);
    let map = |req: Incoming| {
        let plugins = plugins.clone();
        async move {
            plugins
                .map_request("source_fanout", &req, "{}", "shop")
                .await
        }
    };
    assert_eq!(map(fanout(0)).await, Ok(Vec::new()));
    assert_eq!(map(fanout(1000)).await.unwrap().len(), 1000);
    assert_eq!(
        map(fanout(1001)).await,
        Err(PluginError::InvalidOutput(
            "1001 events, over the limit of 1000 per request".into()
        ))
    );
    match map(request("not json", &[])).await {
        Err(PluginError::Returned(why)) => assert!(why.starts_with("fanout body: "), "{why}"),
        other => panic!("expected Returned, got {other:?}"),
    }
    // A type posted events may not have is refused in the plugin's output too.
    let bad_type = request(r#"{"n": 2, "type": "Order Created"}"#, &[]);
    assert_eq!(
        map(bad_type).await.unwrap_err().to_string(),
        r#"produced invalid output: event[0]: type "Order Created" must be 1..=128 characters of [a-z0-9_.-]"#
    );
    let text = metrics.render();
    assert!(
        text.contains(r#"weir_plugin_calls_total{plugin="source_fanout",result="failure"} 3"#),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_source_plugins_fail_as_plugin_failures() {
    let (plugins, _) = host(2000, &["source_trap", "source_garbage"]);
    let req = fanout(1);
    match plugins.map_request("source_trap", &req, "{}", "shop").await {
        Err(PluginError::Trap(why)) => {
            assert!(why.contains("unreachable"), "{why}");
            assert!(why.ends_with("stderr: boom on /in/shop"), "{why}");
        }
        other => panic!("expected Trap, got {other:?}"),
    }
    match plugins
        .map_request("source_garbage", &req, "{}", "shop")
        .await
    {
        Err(PluginError::InvalidOutput(why)) => {
            assert!(why.starts_with("event[1]: data is not valid JSON"), "{why}")
        }
        other => panic!("expected InvalidOutput, got {other:?}"),
    }
    assert!(matches!(
        plugins.map_request("nowhere", &req, "{}", "shop").await,
        Err(PluginError::NotLoaded(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_plugin_that_never_returns_times_out_and_is_benched() {
    let (plugins, metrics) = host(100, &["source_loop"]);
    let req = fanout(1);
    for _ in 0..5 {
        assert_eq!(
            plugins.map_request("source_loop", &req, "{}", "shop").await,
            Err(PluginError::Timeout(100))
        );
    }
    // Benched for this source only: another source's calls still run.
    assert!(matches!(
        plugins.map_request("source_loop", &req, "{}", "shop").await,
        Err(PluginError::Benched { strikes: 5, .. })
    ));
    assert_eq!(
        plugins
            .map_request("source_loop", &req, "{}", "other")
            .await,
        Err(PluginError::Timeout(100))
    );
    let text = metrics.render();
    assert!(
        text.contains(r#"weir_plugin_calls_total{plugin="source_loop",result="benched"} 1"#),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_two_kinds_are_told_apart_and_not_mixed_up() {
    let (plugins, _) = host(2000, &["source_fanout", "echo_config"]);
    assert_eq!(plugins.kind("source_fanout"), Some(PluginKind::Source));
    assert_eq!(plugins.kind("echo_config"), Some(PluginKind::Filter));
    assert_eq!(plugins.kind("nowhere"), None);
    let kinds: Vec<(String, Option<PluginKind>)> = plugins
        .states()
        .into_iter()
        .map(|s| (s.name, s.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("echo_config".to_owned(), Some(PluginKind::Filter)),
            ("source_fanout".to_owned(), Some(PluginKind::Source)),
        ]
    );
    assert_eq!(
        plugins.validate_file(&test_plugin("source_trap")).unwrap(),
        PluginKind::Source
    );
    assert_eq!(
        plugins.validate_file(&test_plugin("trap")).unwrap(),
        PluginKind::Filter
    );

    let wrong = plugins
        .map_request("echo_config", &fanout(1), "{}", "shop")
        .await
        .unwrap_err();
    assert_eq!(
        wrong,
        PluginError::WrongKind {
            plugin: "echo_config".into(),
            is: PluginKind::Filter
        }
    );
    assert_eq!(
        wrong.to_string(),
        "plugin echo_config is a filter plugin; a source needs a source plugin"
    );

    let event = Event {
        id: "e1".into(),
        event_type: "x.y".into(),
        owner_id: None,
        data: "{}".into(),
        occurred_at: "2026-01-01T00:00:00Z".into(),
    };
    let request = Rendered {
        body: event.envelope_json(),
        headers: Vec::new(),
    };
    let ctx = CallContext {
        webhook: "w",
        event: "e1",
        delivery: "d1",
    };
    let wrong = plugins
        .call(
            &plugins.snapshot(),
            "source_fanout",
            &event,
            &request,
            "{}",
            &ctx,
        )
        .await
        .unwrap_err();
    assert_eq!(
        wrong.to_string(),
        "plugin source_fanout is a source plugin; a webhook's chain needs a filter plugin"
    );
    assert!(
        plugins
            .call_blocking("source_fanout", &event, &request, "{}")
            .is_err()
    );
}

#[test]
fn plugin_status_without_a_kind_still_parses() {
    let old =
        r#"{"name": "a", "sha256": null, "loaded_at": null, "state": "failed", "error": "x"}"#;
    let status: PluginStatus = serde_json::from_str(old).unwrap();
    assert_eq!(status.kind, None);
    let new = serde_json::to_value(PluginStatus {
        kind: Some(PluginKind::Source),
        ..status
    })
    .unwrap();
    assert_eq!(new["kind"], "source");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_push_maps_a_push_per_commit_and_ignores_a_ping() {
    let (plugins, _) = host(2000, &[]);
    load(&plugins, &example_plugin("github_push"));
    let push = json!({
        "ref": "refs/heads/main",
        "repository": {"full_name": "octo/hello"},
        "commits": [
            {"id": "a1", "message": "One", "timestamp": "2026-03-01T10:00:00+01:00",
             "author": {"name": "Octo", "email": "o@example.com"}},
            {"id": "b2", "message": "Two", "timestamp": "2026-03-01T10:05:00+01:00",
             "author": {"name": "Octo", "email": "o@example.com"}},
        ],
    })
    .to_string();
    let headers = |event| [("x-github-event", event), ("x-github-delivery", "d-7")];
    let events = plugins
        .map_request(
            "github_push",
            &request(&push, &headers("push")),
            r#"{"owner_id": "org_1"}"#,
            "github",
        )
        .await
        .unwrap();
    let ids: Vec<_> = events.iter().map(|e| e.id.clone().unwrap()).collect();
    assert_eq!(ids, ["d-7:a1", "d-7:b2"]);
    let data: Value = serde_json::from_str(&events[1].data).unwrap();
    assert_eq!(
        (
            &data["repository"],
            &data["ref"],
            &data["commit"],
            &data["message"]
        ),
        (
            &json!("octo/hello"),
            &json!("refs/heads/main"),
            &json!("b2"),
            &json!("Two")
        )
    );
    assert_eq!(
        events[0],
        EventDraft {
            id: Some("d-7:a1".into()),
            event_type: "commit.push".into(),
            owner_id: Some("org_1".into()),
            data: events[0].data.clone(),
            occurred_at: Some("2026-03-01T10:00:00+01:00".into()),
        }
    );
    let ping = plugins
        .map_request(
            "github_push",
            &request(r#"{"zen": "Design for failure."}"#, &headers("ping")),
            "{}",
            "github",
        )
        .await;
    assert_eq!(ping, Ok(Vec::new()));
}

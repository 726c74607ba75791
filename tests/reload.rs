//! Live reload: config.toml edits and plugin files changing under a running
//! weir, with nothing lost.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

fn hook(id: &str, url: &str, extra: &str) -> String {
    format!("[[webhooks]]\nid = \"{id}\"\nurl = \"{url}\"\n{extra}\n\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_added_removed_and_deactivated_by_editing_config() {
    let (a, b) = (Receiver::start().await, Receiver::start().await);
    let weir = Weir::start(&hook("a", &a.url("/"), ""), &[]).await;
    weir.send(&json!({"id": "1", "type": "x.y", "data": 1})).await;
    a.wait_for(1).await;

    // Add b.
    weir.rewrite_config(&format!("{}{}{}", preamble(), hook("a", &a.url("/"), ""), hook("b", &b.url("/"), "")));
    eventually("b configured", async || {
        let (s, _) = weir.get("/v1/webhooks/b").await;
        (s == 200).then_some(())
    })
    .await;
    weir.send(&json!({"id": "2", "type": "x.y", "data": 1})).await;
    a.wait_for(2).await;
    b.wait_for(1).await;

    // Deactivate b while it is failing: its pending deliveries are canceled.
    b.always(Reply::Status(500));
    let slow_retry = "events = [\"x.*\"]\nretry_delays_secs = [3600]";
    weir.rewrite_config(&format!("{}{}{}", preamble(), hook("a", &a.url("/"), ""), hook("b", &b.url("/"), slow_retry)));
    eventually("b retrying slowly", async || {
        let (_, v) = weir.get("/v1/webhooks/b").await;
        (v["events"][0] == "x.*").then_some(())
    })
    .await;
    weir.send(&json!({"id": "3", "type": "x.y", "data": 1})).await;
    weir.wait_deliveries("webhook=b&status=retrying", |r| r.len() == 1).await;
    weir.rewrite_config(&format!("{}{}{}", preamble(), hook("a", &a.url("/"), ""), hook("b", &b.url("/"), "active = false")));
    weir.wait_deliveries("webhook=b&status=canceled", |r| r.len() == 1).await;
    weir.send(&json!({"id": "4", "type": "x.y", "data": 1})).await;
    a.wait_for(4).await;
    let (_, log) = weir.get("/v1/deliveries?event=4").await;
    assert_eq!(log["deliveries"].as_array().unwrap().len(), 1, "inactive b got no delivery: {log}");

    // Remove a: it stops receiving.
    weir.rewrite_config(&format!("{}{}", preamble(), hook("b", &b.url("/"), "active = false")));
    eventually("a removed", async || {
        let (s, _) = weir.get("/v1/webhooks/a").await;
        (s == 404).then_some(())
    })
    .await;
    weir.send(&json!({"id": "5", "type": "x.y", "data": 1})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(a.count(), 4);
    weir.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_config_is_rejected_and_the_old_one_keeps_running() {
    let a = Receiver::start().await;
    let good = format!("{}{}", preamble(), hook("a", &a.url("/"), ""));
    let weir = Weir::start_with(&good, &[]).await;
    weir.rewrite_config(&format!("{good}[[webhooks]]\nid = \"a\"\nurl = \"nope\"\ncolour = \"red\"\n"));
    let err = eventually("reload error visible", async || {
        let (_, v) = weir.get("/v1/webhooks").await;
        v["config"]["last_reload_error"].as_str().map(str::to_owned)
    })
    .await;
    assert!(err.contains("config.toml:") && err.contains("colour"), "{err}");
    // Still serving with the old config.
    weir.send(&json!({"id": "still", "type": "x.y", "data": 1})).await;
    a.wait_for(1).await;
    let (_, v) = weir.get("/v1/webhooks").await;
    assert_eq!(v["webhooks"].as_array().unwrap().len(), 1);
    // A later good edit clears the error.
    weir.rewrite_config(&format!("{good}{}", hook("b", &a.url("/b"), "")));
    eventually("reload applied", async || {
        let (_, v) = weir.get("/v1/webhooks").await;
        (v["webhooks"].as_array().unwrap().len() == 2 && v["config"]["last_reload_error"].is_null()).then_some(())
    })
    .await;
    let text = reqwest::get(format!("{}/metrics", weir.url)).await.unwrap().text().await.unwrap();
    assert!(text.contains("weir_reloads_total{kind=\"config\",result=\"error\"} 1"), "{text}");
    assert!(text.contains("weir_reloads_total{kind=\"config\",result=\"ok\"} 1"), "{text}");
    weir.stop().await;
}

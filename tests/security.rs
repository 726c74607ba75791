//! What weir guards against, probed from outside: targets the SSRF guard
//! must refuse however they are written or routed.

mod common;

use std::path::Path;

use common::process::spawn_with;
use common::*;
use serde_json::{Value, json};

/// The sole delivery of `webhook` on a weir at `url`, once it is
/// delivered or dead.
async fn finished_delivery(url: &str, webhook: &str) -> Value {
    let client = reqwest::Client::new();
    let get = async |path: String| -> Value {
        let r = client.get(format!("{url}{path}")).send().await.unwrap();
        r.json().await.unwrap()
    };
    let id = eventually("the delivery to finish", async || {
        let v = get(format!("/v1/deliveries?webhook={webhook}")).await;
        let rows = v["deliveries"].as_array()?.clone();
        let finished =
            rows.len() == 1 && ["dead", "delivered"].contains(&rows[0]["status"].as_str()?);
        finished.then(|| rows[0]["id"].as_str().unwrap().to_owned())
    })
    .await;
    get(format!("/v1/deliveries/{id}")).await
}

/// A config whose webhooks get no `allow_targets`: only global addresses.
fn unguarded(dir: &Path, hooks: &str) {
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[delivery]\nmax_retries = 0\ntimeout_secs = 5\n\n{hooks}"
    );
    std::fs::write(dir.join("config.toml"), config).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_in_the_environment_cannot_carry_a_refused_target() {
    // A proxy resolves names itself, past the guard: weir must not use one.
    let proxy = Receiver::start().await;
    let sub = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let target = format!("http://localhost:{}/", sub.addr.port());
    unguarded(dir.path(), &hook("internal", &target, ""));
    let mut weir = spawn_with(dir.path(), |cmd| {
        for var in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"] {
            cmd.env(var, proxy.url(""))
                .env(var.to_lowercase(), proxy.url(""));
        }
        cmd.env_remove("NO_PROXY").env_remove("no_proxy");
    });
    let r = reqwest::Client::new()
        .post(format!("{}/v1/events", weir.url))
        .json(&json!({"id": "p1", "type": "a.b", "data": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let detail = finished_delivery(&weir.url, "internal").await;
    let error = detail["attempt_log"][0]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        detail["status"] == "dead" && error.contains("refused target"),
        "{detail:#}"
    );
    // The attempt is over: had it gone anywhere, it would have arrived.
    assert_eq!(proxy.count(), 0, "the proxy was asked");
    assert_eq!(sub.count(), 0);
    weir.child.kill().unwrap();
    weir.child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_literals_carrying_loopback_are_refused() {
    let sub = Receiver::start().await;
    let port = sub.addr.port();
    let forms = [
        ("compat", format!("http://[::7f00:1]:{port}/")),
        ("nat64", format!("http://[64:ff9b::7f00:1]:{port}/")),
        ("sixtofour", format!("http://[2002:7f00:1::]:{port}/")),
        ("sitelocal", format!("http://[fec0::1]:{port}/")),
    ];
    let dir = tempfile::tempdir().unwrap();
    let hooks: String = forms.iter().map(|(id, url)| hook(id, url, "")).collect();
    unguarded(dir.path(), &hooks);
    let weir = Weir::boot(dir).await;
    weir.send(&json!({"id": "v6", "type": "a.b", "data": 1}))
        .await;
    for (id, url) in &forms {
        let detail = weir.sole_delivery(id, "dead").await;
        let error = detail["attempt_log"][0]["error"]
            .as_str()
            .unwrap_or_default();
        assert!(error.contains("refused target"), "{url}: {detail:#}");
    }
    assert_eq!(sub.count(), 0);
    weir.stop().await;
}

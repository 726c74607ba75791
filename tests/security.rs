//! What weir guards against, probed from outside: targets the SSRF guard
//! must refuse however they are written.

mod common;

use std::path::Path;

use common::*;
use serde_json::json;

/// A config whose webhooks get no `allow_targets`: only global addresses.
fn unguarded(dir: &Path, hooks: &str) {
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[delivery]\nmax_retries = 0\ntimeout_secs = 5\n\n{hooks}"
    );
    std::fs::write(dir.join("config.toml"), config).unwrap();
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

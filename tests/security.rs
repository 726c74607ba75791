//! What weir guards against, probed from outside: secrets in config errors,
//! targets the SSRF guard must refuse however they are written or routed,
//! and cross-site posts to ingest.

mod common;

use std::path::Path;

use common::process::spawn_with;
use common::*;
use serde_json::{Value, json};

both_stores! {
    /// The 1-based line of the first line of `text` containing `needle`.
    fn line_with(text: &str, needle: &str) -> usize {
        text.lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle:?} not in the config"))
            + 1
    }

    /// Config edits with a type or syntax error next to a secret, each with the
    /// key it must name and the secret it must not show.
    fn edits_near_secrets(url: &str) -> Vec<(String, &'static str, &'static str)> {
        let server = "[server]\nlisten = \"127.0.0.1:0\"\n";
        let delivery = "[delivery]\nallow_targets = [\"127.0.0.0/8\"]\n\n";
        let with = |extra: &str| format!("{server}\n{delivery}{}", hook("a", url, extra));
        vec![
            (
                with("secrets = \"whsec_c2VjcmV0LW9uZS1zZWNyZXQtb25l\""),
                "webhooks[0].secrets",
                "c2VjcmV0LW9uZS1zZWNyZXQtb25l",
            ),
            (
                format!(
                    "{server}\n{delivery}{}",
                    hook("a", "http://user:PASSWORD2@127.0.0.1:99999/x", "")
                ),
                "webhooks[0].url",
                "PASSWORD2",
            ),
            (
                format!(
                    "{server}admin_token = 987654321987\n\n{delivery}{}",
                    hook("a", url, "")
                ),
                "server.admin_token",
                "987654321987",
            ),
            (
                with("secrets = [\"whsec_c2VjcmV0!dHdv\"]"),
                "webhooks[0].secrets",
                "!",
            ),
            (
                with("headers = { \"x-api-key\" = 424242 }"),
                "webhooks[0].headers.x-api-key",
                "424242",
            ),
        ]
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn config_errors_name_file_line_and_key_but_never_a_secret() {
        let sub = Receiver::start().await;
        let good = format!("{}{}", preamble(), hook("a", &sub.url("/"), ""));
        let weir = Weir::start_with(&good, &[]).await;
        for (text, key, secret) in edits_near_secrets(&sub.url("/")) {
            let needle = key.rsplit('.').next().unwrap().trim_end_matches("[0]");
            let want = format!("config.toml:{}: {key}:", line_with(&text, needle));
            // What an admin reads from a running weir (the log line is the same text).
            weir.rewrite_config(&text);
            let err = eventually("the reload error", async || {
                let (_, v) = weir.get("/v1/webhooks").await;
                let err = v["config"]["last_reload_error"].as_str()?.to_owned();
                err.contains(&want).then_some(err)
            })
            .await;
            assert!(!err.contains(secret), "{secret:?} shown: {err}");
            // What `weir check` prints.
            let file = weir.path("check.toml");
            std::fs::write(&file, &text).unwrap();
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
                .args(["check", "--config"])
                .arg(&file)
                .output()
                .unwrap();
            let printed = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{printed}");
            assert!(
                printed.contains(&want.replace("config.toml", "check.toml")),
                "{printed}"
            );
            assert!(!printed.contains(secret), "{secret:?} shown: {printed}");
        }
        weir.stop().await;
    }

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
        write_config(dir, &config);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_proxy_in_the_environment_cannot_carry_a_refused_target() {
        // A proxy resolves names itself, past the guard: weir must not use one.
        let proxy = Receiver::start().await;
        let sub = Receiver::start().await;
        let dir = common::tempdir();
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
        let dir = common::tempdir();
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ingest_takes_only_json_so_a_cross_site_form_cannot_post() {
        let sub = Receiver::start().await;
        let weir = Weir::start(&hook("a", &sub.url("/"), ""), &[]).await;
        let client = reqwest::Client::new();
        let post = async |content_type: Option<&str>, id: &str| {
            let mut req = client
                .post(format!("{}/v1/events", weir.url))
                .body(json!({"id": id, "type": "a.b", "data": 1}).to_string());
            if let Some(t) = content_type {
                req = req.header("content-type", t);
            }
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        };
        for (content_type, shown) in [
            (None, "no Content-Type"),
            (Some("text/plain"), "\"text/plain\""),
            (
                Some("application/x-www-form-urlencoded"),
                "x-www-form-urlencoded",
            ),
            (
                Some("multipart/form-data; boundary=x"),
                "multipart/form-data",
            ),
            (Some("application/jsonp"), "application/jsonp"),
        ] {
            let (status, body) = post(content_type, "refused").await;
            assert_eq!(status, 415, "{content_type:?}: {body}");
            assert_eq!(body["error"]["code"], "unsupported_media_type");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(
                message.contains("application/json") && message.contains(shown),
                "{message}"
            );
        }
        for (content_type, id) in [
            ("application/json", "plain"),
            ("application/json; charset=utf-8", "charset"),
            ("Application/JSON", "upper"),
        ] {
            let (status, body) = post(Some(content_type), id).await;
            assert_eq!(status, 202, "{content_type}: {body}");
        }
        sub.wait_for(3).await;
        let rows = weir.all_deliveries("webhook=a").await;
        let ids: Vec<&str> = rows
            .iter()
            .map(|r| r["event_id"].as_str().unwrap())
            .collect();
        assert_eq!(rows.len(), 3, "nothing refused was stored: {ids:?}");
        assert!(!ids.contains(&"refused"), "{ids:?}");
        weir.stop().await;
    }

    /// A page of another site cannot make the browser of someone who can
    /// reach weir send a test event, even with no admin token set and on a
    /// route that reads no body; weir's own console (same origin) can.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn another_sites_page_cannot_write_through_a_visitors_browser() {
        let sub = Receiver::start().await;
        let weir = Weir::start(&hook("a", &sub.url("/"), ""), &[]).await;
        let host = weir.url.trim_start_matches("http://").to_owned();
        let client = reqwest::Client::new();
        let test_send = async |headers: &[(&str, &str)]| {
            let mut req = client.post(format!("{}/v1/webhooks/a/test", weir.url));
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        };
        for refused in [
            vec![("sec-fetch-site", "cross-site")],
            vec![("origin", "http://evil.example")],
            vec![("origin", "null")],
        ] {
            let (status, body) = test_send(&refused).await;
            assert_eq!(status, 403, "{refused:?}: {body}");
            assert_eq!(body["error"]["code"], "cross_site");
        }
        let own = format!("http://{host}");
        let (status, body) =
            test_send(&[("sec-fetch-site", "same-origin"), ("origin", own.as_str())]).await;
        assert_eq!(status, 202, "{body}");
        // The console's send arrives, and it is the only one.
        let got = sub.wait_for(1).await;
        assert_eq!(got[0].json()["type"], "weir.test");
        assert_eq!(weir.all_deliveries("webhook=a").await.len(), 1);
        weir.stop().await;
    }
}

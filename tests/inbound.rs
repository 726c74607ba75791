//! Inbound sources end to end: requests signed the way each provider signs
//! them, caught by the real server, routed to a real subscriber; tampered,
//! stale and unsigned ones refused and never routed; a sender's retries
//! recognised; source plugins; the API and its tenant scoping.

mod common;

use base64::Engine as _;
use common::*;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

fn sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).unwrap();
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

fn sha512(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut m = <Hmac<sha2::Sha512> as Mac>::new_from_slice(key).unwrap();
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// POSTs `body` with `headers` to `/in/{source}`.
async fn deliver(
    weir: &Weir,
    source: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}/in/{source}", weir.url))
        .body(body.to_vec());
    for (n, v) in headers {
        req = req.header(*n, v);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn github_headers(
    secret: &str,
    delivery: &str,
    event: &str,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    vec![
        (
            "x-hub-signature-256",
            format!("sha256={}", hex::encode(sha256(secret.as_bytes(), &[body]))),
        ),
        ("x-github-delivery", delivery.to_owned()),
        ("x-github-event", event.to_owned()),
        ("content-type", "application/json".to_owned()),
    ]
}

const GH_SECRET: &str = "It's a Secret to Everybody";

both_stores! {
    fn github_source(extra: &str) -> String {
        format!(
            "[[sources]]\nid = \"github\"\nverify = \"github\"\nsecrets = [\"{GH_SECRET}\"]\n{extra}\n\n"
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_github_delivery_is_verified_caught_and_routed_once() {
        let sub = Receiver::start().await;
        let config = format!(
            "{}{}",
            hook("pushes", &sub.url("/"), "events = [\"push\"]"),
            github_source("")
        );
        let weir = Weir::start(&config, &[]).await;
        let body = br#"{"ref":"refs/heads/main","commits":[{"id":"c1"}]}"#;
        let (status, answer) = deliver(&weir, "github", &github_headers(GH_SECRET, "d-1", "push", body), body).await;
        assert_eq!(status, 202, "{answer}");
        assert_eq!(answer["status"], "caught");
        let first = answer["id"].as_str().unwrap().to_owned();
        assert!(first.starts_with("req_"), "{first}");

        // Tampered: the signature of another body.
        let mut headers = github_headers(GH_SECRET, "d-2", "push", body);
        let (status, answer) = deliver(&weir, "github", &headers, br#"{"ref":"refs/heads/evil"}"#).await;
        assert_eq!(status, 401, "{answer}");
        assert_eq!(answer["error"]["code"], "unverified");
        assert!(answer["error"]["message"].as_str().unwrap().contains("no signature matched"), "{answer}");
        // Signed with another secret.
        let (status, _) = deliver(&weir, "github", &github_headers("not the secret", "d-3", "push", body), body).await;
        assert_eq!(status, 401);
        // Unsigned.
        headers.retain(|(n, _)| *n != "x-hub-signature-256");
        let (status, answer) = deliver(&weir, "github", &headers, body).await;
        assert_eq!(status, 401);
        assert!(answer["error"]["message"].as_str().unwrap().to_lowercase().contains("missing"), "{answer}");
        // GitHub retries the first delivery: recognised, not routed again.
        let (status, answer) = deliver(&weir, "github", &github_headers(GH_SECRET, "d-1", "push", body), body).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["status"], "duplicate");
        assert_eq!(answer["id"], first.as_str());
        // A later delivery must arrive after everything above; then exactly
        // two have arrived.
        let later = br#"{"ref":"refs/heads/next","commits":[]}"#;
        let (status, _) = deliver(&weir, "github", &github_headers(GH_SECRET, "d-4", "push", later), later).await;
        assert_eq!(status, 202);
        let got = sub.wait_until(|r| r.iter().any(|x| x.header("webhook-id") == "d-4")).await;
        assert_eq!(got.len(), 2, "only the two verified deliveries arrive");
        let event = got.iter().find(|r| r.header("webhook-id") == "d-1").unwrap().json();
        assert_eq!(event["type"], "push");
        assert_eq!(event["id"], "d-1");
        // `data` is the sender's body, byte for byte.
        assert!(
            std::str::from_utf8(&got.iter().find(|r| r.header("webhook-id") == "d-1").unwrap().body)
                .unwrap()
                .contains(std::str::from_utf8(body).unwrap())
        );

        // The source's log: what was caught and what it became, and what
        // was refused and why.
        // A request is recorded routed after its events are stored, so its
        // delivery may arrive first: wait for the record.
        let log = eventually("both requests recorded routed", async || {
            let (status, log) = weir.get("/v1/sources/github/requests").await;
            assert_eq!(status, 200, "{log}");
            let requests = log["requests"].as_array().unwrap();
            assert_eq!(requests.len(), 2, "{log}");
            requests.iter().all(|r| r["state"] == "routed").then_some(log)
        })
        .await;
        let requests = log["requests"].as_array().unwrap();
        let routed_first = requests.iter().find(|r| r["id"] == first.as_str()).unwrap();
        assert_eq!(routed_first["events"], json!(["d-1"]));
        assert_eq!(routed_first["dedup_key"], "d-1");
        let refused = log["refused"].as_array().unwrap();
        assert_eq!(refused.len(), 3, "{log}");
        assert!(refused.iter().all(|r| !r["reason"].as_str().unwrap().is_empty()));
        let (status, detail) = weir.get(&format!("/v1/sources/github/requests/{first}")).await;
        assert_eq!(status, 200);
        assert_eq!(detail["body"], std::str::from_utf8(body).unwrap());
        assert_eq!(detail["body_encoding"], "text");
        let metrics = weir.metrics().await;
        assert!(metrics.contains("weir_inbound_requests_total{result=\"caught\",source=\"github\"} 2"), "{metrics}");
        assert!(metrics.contains("weir_inbound_requests_total{result=\"duplicate\",source=\"github\"} 1"), "{metrics}");
        assert!(metrics.contains("weir_inbound_requests_total{result=\"refused_no_match\",source=\"github\"} 2"), "{metrics}");
        weir.stop().await;
    }

    /// GitHub's documented example verifies; its body is not JSON, so
    /// without a plugin the caught request is held, with the reason.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn githubs_published_example_verifies_and_a_non_json_body_is_held() {
        let weir = Weir::start(&github_source(""), &[]).await;
        let headers = vec![
            ("x-hub-signature-256", "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17".to_owned()),
            ("x-github-event", "ping".to_owned()),
            ("x-github-delivery", "example".to_owned()),
        ];
        let (status, answer) = deliver(&weir, "github", &headers, b"Hello, World!").await;
        assert_eq!(status, 202, "{answer}");
        let id = answer["id"].as_str().unwrap().to_owned();
        let held = eventually("the request to be held", async || {
            let (_, r) = weir.get(&format!("/v1/sources/github/requests/{id}")).await;
            (r["state"] == "held").then_some(r)
        })
        .await;
        assert!(held["reason"].as_str().unwrap().contains("not JSON"), "{held}");
        assert_eq!(held["body"], "Hello, World!");
        weir.stop().await;
    }

    /// Every scheme: a valid request is routed; tampered, stale and unsigned
    /// ones are refused. A last valid request proves none of the refused
    /// ones arrived.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_scheme_routes_the_valid_and_refuses_the_rest() {
        let sub = Receiver::start().await;
        let whsec_key = [7u8; 24];
        let whsec = format!("whsec_{}", b64(&whsec_key));
        let sources = format!(
            r#"
[[sources]]
id = "sw"
verify = "standard-webhooks"
secrets = ["{whsec}"]

[[sources]]
id = "stripe"
verify = "stripe"
secrets = ["whsec_stripe_test"]

[[sources]]
id = "shopify"
verify = "shopify"
secrets = ["shpss_test"]

[[sources]]
id = "slack"
verify = "slack"
secrets = ["slack-signing"]
type_from = "literal:slack.event"

[[sources]]
id = "custom"
verify = "hmac"
secrets = ["custom-key"]
hmac = {{ header = "X-Sig", algorithm = "sha512", encoding = "base64", prefix = "v=", timestamp_header = "X-Ts", signed = "{{timestamp}}:{{body}}" }}
type_from = "json:/kind"

[[sources]]
id = "basic"
verify = "basic"
secrets = ["partner:s3cret"]
type_from = "literal:partner.update"

[[sources]]
id = "bearer"
verify = "bearer"
secrets = ["t0ken"]
type_from = "header:X-Kind"
"#
        );
        let weir = Weir::start(&format!("{}{sources}", hook("all", &sub.url("/"), "")), &[]).await;
        let now = now_secs();
        let stale = now - 3600;
        let body = |kind: &str| format!(r#"{{"id":"evt_{kind}","type":"{kind}.done","kind":"{kind}.done","event_id":"ev_{kind}"}}"#);

        // (source, sign(body, timestamp) -> headers, timestamped)
        type Signer = Box<dyn Fn(&[u8], i64) -> Vec<(&'static str, String)>>;
        let wh = standardwebhooks::Webhook::new(&whsec).unwrap();
        let signers: Vec<(&str, Signer, bool)> = vec![
            ("sw", Box::new(move |b: &[u8], t: i64| {
                let sig = wh.sign("msg_1", t, b).unwrap();
                vec![("webhook-id", "msg_1".into()), ("webhook-timestamp", t.to_string()), ("webhook-signature", sig)]
            }), true),
            ("stripe", Box::new(|b: &[u8], t: i64| {
                let sig = hex::encode(sha256(b"whsec_stripe_test", &[t.to_string().as_bytes(), b".", b]));
                vec![("stripe-signature", format!("t={t},v1={sig}"))]
            }), true),
            ("shopify", Box::new(|b: &[u8], _| {
                vec![
                    ("x-shopify-hmac-sha256", b64(&sha256(b"shpss_test", &[b]))),
                    ("x-shopify-topic", "orders/create".into()),
                    ("x-shopify-webhook-id", "shop-1".into()),
                ]
            }), false),
            ("slack", Box::new(|b: &[u8], t: i64| {
                let sig = hex::encode(sha256(b"slack-signing", &[b"v0:", t.to_string().as_bytes(), b":", b]));
                vec![("x-slack-signature", format!("v0={sig}")), ("x-slack-request-timestamp", t.to_string())]
            }), true),
            ("custom", Box::new(|b: &[u8], t: i64| {
                let sig = b64(&sha512(b"custom-key", &[t.to_string().as_bytes(), b":", b]));
                vec![("x-sig", format!("v={sig}")), ("x-ts", t.to_string())]
            }), true),
            ("basic", Box::new(|_: &[u8], _| {
                vec![("authorization", format!("Basic {}", b64(b"partner:s3cret")))]
            }), false),
            ("bearer", Box::new(|_: &[u8], _| {
                vec![("authorization", "Bearer t0ken".into()), ("x-kind", "partner.ping".into())]
            }), false),
        ];
        for (source, sign, timestamped) in &signers {
            let b = body(source);
            let mut headers = sign(b.as_bytes(), now);
            headers.push(("content-type", "application/json".into()));
            // Tampered body (credentials schemes sign no body: skip).
            if !matches!(*source, "basic" | "bearer") {
                let (status, answer) = deliver(&weir, source, &headers, b"{\"tampered\":true}").await;
                assert_eq!(status, 401, "{source} tampered: {answer}");
            } else {
                let wrong: Vec<(&str, String)> = vec![("authorization", "Bearer nope".into()), ("x-kind", "a.b".into())];
                let (status, answer) = deliver(&weir, source, &wrong, b.as_bytes()).await;
                assert_eq!(status, 401, "{source} wrong credentials: {answer}");
            }
            if *timestamped {
                let old = sign(b.as_bytes(), stale);
                let (status, answer) = deliver(&weir, source, &old, b.as_bytes()).await;
                assert_eq!(status, 401, "{source} stale: {answer}");
                assert!(answer["error"]["message"].as_str().unwrap().contains("tolerance"), "{source}: {answer}");
            }
            let (status, answer) = deliver(&weir, source, &[("content-type", "application/json".into())], b.as_bytes()).await;
            assert_eq!(status, 401, "{source} unsigned: {answer}");
            let (status, answer) = deliver(&weir, source, &headers, b.as_bytes()).await;
            assert_eq!(status, 202, "{source} valid: {answer}");
        }
        let got = sub.wait_for(signers.len()).await;
        let mut types: Vec<String> = got.iter().map(|r| r.json()["type"].as_str().unwrap().to_owned()).collect();
        types.sort();
        assert_eq!(
            types,
            ["orders.create", "partner.ping", "partner.update", "slack.event", "stripe.done", "sw.done", "custom.done"]
                .iter()
                .map(|s| s.to_string())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
        );
        // Provider ids became event ids.
        let ids: Vec<String> = got.iter().map(|r| r.header("webhook-id").to_owned()).collect();
        for want in ["msg_1", "evt_stripe", "shop-1", "ev_slack"] {
            assert!(ids.iter().any(|i| i == want), "{want} in {ids:?}");
        }
        // Nothing else arrives: a final event posted directly must come
        // after everything above, and then the count is exact.
        weir.send(&json!({"id": "last", "type": "z.z", "data": 1})).await;
        sub.wait_until(|r| r.iter().any(|x| x.header("webhook-id") == "last")).await;
        assert_eq!(sub.count(), signers.len() + 1);
        weir.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unknown_sources_wrong_methods_and_large_bodies_keep_nothing() {
        let weir = Weir::start(&github_source("max_body_bytes = 64"), &[]).await;
        let body = vec![b'x'; 65];
        let (status, answer) = deliver(&weir, "github", &github_headers(GH_SECRET, "big", "push", &body), &body).await;
        assert_eq!(status, 413, "{answer}");
        assert_eq!(answer["error"]["code"], "body_too_large");
        let (status, answer) = deliver(&weir, "nope", &[], b"{}").await;
        assert_eq!(status, 404, "{answer}");
        let res = reqwest::Client::new()
            .put(format!("{}/in/github", weir.url))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 405);
        assert_eq!(res.headers()["allow"], "POST");
        // Invalid UTF-8 in a header and a binary body: verified, caught, held.
        let bin = vec![0xff, 0x00, 0xfe];
        let headers = github_headers(GH_SECRET, "bin", "push", &bin);
        let mut req = reqwest::Client::new().post(format!("{}/in/github", weir.url)).body(bin.clone());
        for (n, v) in &headers {
            req = req.header(*n, v);
        }
        req = req.header("x-raw", reqwest::header::HeaderValue::from_bytes(&[0xe9, b'a']).unwrap());
        let res = req.send().await.unwrap();
        assert_eq!(res.status().as_u16(), 202);
        let id = res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
        let held = eventually("the binary body to be held", async || {
            let (_, r) = weir.get(&format!("/v1/sources/github/requests/{id}")).await;
            (r["state"] == "held").then_some(r)
        })
        .await;
        assert_eq!(held["body_encoding"], "base64");
        assert_eq!(held["body"], b64(&bin));
        let (_, log) = weir.get("/v1/sources/github/requests").await;
        assert_eq!(log["requests"].as_array().unwrap().len(), 1, "only the held one: {log}");
        weir.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn api_sources_validate_like_config_ones_and_stay_with_their_owner() {
        let sub = Receiver::start().await;
        let config = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_token = \"admin-secret\"\n\n[delivery]\nallow_targets = [\"127.0.0.0/8\"]\nretry_delays_secs = [0]\n\n{}{}",
            hook("acme-hook", &sub.url("/"), "owners = [\"acme\"]"),
            github_source("")
        );
        let weir = Weir::start_with(&config, &[]).await;
        let acme = weir.token(Some("acme"), &["sources:read", "sources:write"]).await;
        let other = weir.token(Some("globex"), &["sources:read", "sources:write"]).await;
        let post = async |token: &str, body: Value| {
            weir.call(reqwest::Method::POST, "/v1/sources", Some(token), Some(&body)).await
        };
        // The same validation as config.toml, every problem named.
        let (status, answer) = post(&acme, json!({"id": "Bad Id", "verify": "sha1", "methods": ["TRACE"]})).await;
        assert_eq!(status, 400, "{answer}");
        let msg = answer["error"]["message"].as_str().unwrap();
        for key in ["id:", "verify:", "methods:"] {
            assert!(msg.contains(key), "{key} in {msg}");
        }
        let (status, answer) = post(&acme, json!({"id": "github", "verify": "github", "secrets": ["x"]})).await;
        assert_eq!(status, 409, "config ids are taken: {answer}");
        let (status, answer) = post(&acme, json!({"id": "partner", "verify": "bearer", "secrets": ["tok"], "type_from": "literal:partner.ping", "owner_id": "globex"})).await;
        assert_eq!(status, 403, "{answer}");
        let (status, answer) = post(&acme, json!({"id": "partner", "verify": "bearer", "secrets": ["tok"], "type_from": "literal:partner.ping"})).await;
        assert_eq!(status, 201, "{answer}");
        assert_eq!(answer["owner_id"], "acme");
        assert_eq!(answer["secrets"], 1);
        assert_eq!(answer["path"], "/in/partner");
        assert!(!answer.to_string().contains("\"tok\""), "secrets are never shown");
        // Its events are acme's, and reach acme's webhook.
        let (status, _) = deliver(&weir, "partner", &[("authorization", "Bearer tok".into())], br#"{"n":1}"#).await;
        assert_eq!(status, 202);
        let got = sub.wait_for(1).await;
        assert_eq!(got[0].json()["owner_id"], "acme");
        // Another owner sees none of it.
        let (status, list) = weir.call(reqwest::Method::GET, "/v1/sources", Some(&other), None).await;
        assert_eq!(status, 200);
        assert_eq!(list["sources"], json!([]));
        for path in ["/v1/sources/partner", "/v1/sources/partner/requests", "/v1/sources/github"] {
            let (status, _) = weir.call(reqwest::Method::GET, path, Some(&other), None).await;
            assert_eq!(status, 404, "{path}");
        }
        let (status, _) = weir.call(reqwest::Method::DELETE, "/v1/sources/partner", Some(&other), None).await;
        assert_eq!(status, 404);
        let (_, list) = weir.call(reqwest::Method::GET, "/v1/sources", Some(&acme), None).await;
        assert_eq!(list["sources"].as_array().unwrap().len(), 1, "{list}");
        // Recorded routed after its event is stored: wait for the record.
        eventually("the request recorded routed", async || {
            let (status, log) = weir.call(reqwest::Method::GET, "/v1/sources/partner/requests", Some(&acme), None).await;
            assert_eq!(status, 200);
            (log["requests"][0]["state"] == "routed").then_some(())
        })
        .await;
        // A token without the scope is told which one it lacks.
        let reader = weir.token(Some("acme"), &["webhooks:read"]).await;
        let (status, answer) = weir.call(reqwest::Method::GET, "/v1/sources", Some(&reader), None).await;
        assert_eq!(status, 403, "{answer}");
        assert!(answer["error"]["message"].as_str().unwrap().contains("sources:read"));
        // Config sources are changed in config.toml only.
        let (status, _) = weir.call(reqwest::Method::DELETE, "/v1/sources/github", weir.admin_token.as_deref(), None).await;
        assert_eq!(status, 409);
        // Deleted, it catches nothing more, and survives a restart deleted.
        let (status, _) = weir.call(reqwest::Method::DELETE, "/v1/sources/partner", Some(&acme), None).await;
        assert_eq!(status, 200);
        let (status, _) = deliver(&weir, "partner", &[("authorization", "Bearer tok".into())], b"{}").await;
        assert_eq!(status, 404);
        weir.stop().await;
    }

    /// `kill -9` right after `202`s: every caught request is routed once
    /// weir is back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kill_9_after_202_loses_no_caught_request() {
        let sub = Receiver::start().await;
        let dir = common::tempdir();
        write_config(
            dir.path(),
            &format!("{}{}{}", preamble(), hook("all", &sub.url("/"), "max_in_flight = 16"), github_source("")),
        );
        let weir = common::process::spawn(dir.path());
        let client = reqwest::Client::new();
        let mut caught = Vec::new();
        let sends = (0..200).map(|i| {
            let client = client.clone();
            let url = format!("{}/in/github", weir.url);
            async move {
                let body = format!(r#"{{"n":{i}}}"#);
                let mut req = client.post(url).body(body.clone());
                for (n, v) in github_headers(GH_SECRET, &format!("k-{i}"), "push", body.as_bytes()) {
                    req = req.header(n, v);
                }
                (i, req.send().await.map(|r| r.status().as_u16()))
            }
        });
        for (i, result) in futures_util::future::join_all(sends).await {
            if let Ok(202) = result {
                caught.push(format!("k-{i}"));
            }
        }
        assert_eq!(caught.len(), 200);
        // Killed the moment the last 202 arrived: some requests are not
        // routed yet.
        weir.kill();
        let weir = common::process::spawn(dir.path());
        let want: std::collections::HashSet<String> = caught.into_iter().collect();
        eventually("every caught request to be delivered", async || {
            let got = sub.distinct("webhook-id");
            want.iter().all(|id| got.contains(id)).then_some(())
        })
        .await;
        // Each once: ids are the sender's delivery ids, and nothing beyond.
        assert_eq!(sub.distinct("webhook-id").len(), 200);
        weir.kill();
    }

    /// A source plugin makes many events of one request; a failing one holds
    /// the request, which a replay routes once the plugin is fixed (a new
    /// file dropped in, hot-reloaded).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_source_plugin_fans_out_and_a_held_request_replays_after_a_fix() {
        let sub = Receiver::start().await;
        let config = format!(
            "{}[[sources]]\nid = \"gh\"\nverify = \"github\"\nsecrets = [\"{GH_SECRET}\"]\nplugin = {{ name = \"mapper\" }}\n\n",
            hook("commits", &sub.url("/"), "events = [\"commit.push\"]"),
        );
        let weir = Weir::start(&config, &[("mapper", example_plugin("github_push"))]).await;
        let push = json!({
            "ref": "refs/heads/main",
            "repository": {"full_name": "acme/app"},
            "commits": [
                {"id": "c1", "message": "one", "author": {"name": "A"}},
                {"id": "c2", "message": "two", "author": {"name": "B"}},
                {"id": "c3", "message": "three", "author": {"name": "C"}}
            ]
        })
        .to_string();
        let (status, _) = deliver(&weir, "gh", &github_headers(GH_SECRET, "p-1", "push", push.as_bytes()), push.as_bytes()).await;
        assert_eq!(status, 202);
        let got = sub.wait_for(3).await;
        let mut ids: Vec<String> = got.iter().map(|r| r.header("webhook-id").to_owned()).collect();
        ids.sort();
        assert_eq!(ids, ["p-1:c1", "p-1:c2", "p-1:c3"]);

        // A plugin that traps: the request is held with the reason.
        std::fs::copy(test_plugin("source_trap"), weir.path("plugins/mapper.wasm")).unwrap();
        // Requests are sent until one meets the new file (the reload is
        // asynchronous); that one is held.
        let (id, delivery) = eventually("a request held by the trapping plugin", async || {
            let delivery = format!("p-{}", rand_id());
            let push2 = json!({"ref": "refs/heads/x", "repository": {"full_name": "acme/app"}, "commits": [{"id": "c9", "message": "nine", "author": {"name": "N"}}]}).to_string();
            let (status, answer) = deliver(&weir, "gh", &github_headers(GH_SECRET, &delivery, "push", push2.as_bytes()), push2.as_bytes()).await;
            assert_eq!(status, 202);
            let id = answer["id"].as_str().unwrap().to_owned();
            let r = eventually("the request to be routed or held", async || {
                let (_, r) = weir.get(&format!("/v1/sources/gh/requests/{id}")).await;
                (r["state"] != "pending").then_some(r)
            })
            .await;
            (r["state"] == "held").then_some((id, delivery))
        })
        .await;
        let (_, held) = weir.get(&format!("/v1/sources/gh/requests/{id}")).await;
        assert!(held["reason"].as_str().unwrap().contains("plugin mapper failed"), "{held}");
        // The fix lands; the replay routes the kept request.
        std::fs::copy(example_plugin("github_push"), weir.path("plugins/mapper.wasm")).unwrap();
        eventually("the fixed plugin to route a replay", async || {
            let (status, _) = weir.post(&format!("/v1/sources/gh/requests/{id}/replay"), None).await;
            assert_eq!(status, 202);
            let r = eventually("the replay to finish", async || {
                let (_, r) = weir.get(&format!("/v1/sources/gh/requests/{id}")).await;
                (r["state"] != "pending").then_some(r)
            })
            .await;
            (r["state"] == "routed").then_some(())
        })
        .await;
        let want = format!("{delivery}:c9");
        sub.wait_until(|r| r.iter().any(|x| x.header("webhook-id") == want)).await;
        weir.stop().await;
    }
}

fn rand_id() -> String {
    format!("{:x}", rand::random::<u64>())
}

//! The management API through the real server: webhooks created, changed,
//! rotated and deleted at run time, tenants and scoped tokens, and config
//! webhooks beside API ones.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{
    ManualClock, Receiver, Reply, Weir, both_stores, eventually, hook, preamble, write_config,
};
use reqwest::Method;
use serde_json::{Value, json};

both_stores! {
    const ADMIN: &str = "admin-secret";

    /// The test preamble with an admin token.
    fn with_admin(webhooks: &str) -> String {
        preamble().replace(
            "[server]\n",
            &format!("[server]\nadmin_token = \"{ADMIN}\"\n"),
        ) + webhooks
    }

    async fn boot_with(config: &str, clock: Arc<dyn weir::event::Clock>) -> Weir {
        let dir = common::tempdir();
        std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
        write_config(dir.path(), config);
        Weir::boot_with_clock(dir, clock).await
    }

    fn verifies(secret: &str, got: &common::Received) -> bool {
        let wh = standardwebhooks::Webhook::new(secret).unwrap();
        wh.verify(&got.body, &got.headers).is_ok()
    }

    async fn create(weir: &Weir, token: Option<&str>, body: Value) -> Value {
        let (status, answer) = weir
            .call(Method::POST, "/v1/webhooks", token, Some(&body))
            .await;
        assert_eq!(status, 201, "{answer}");
        answer
    }

    /// Waits until the reload counter shows `n` successful config reloads.
    async fn reloaded(weir: &Weir, n: usize) {
        let want = format!("weir_reloads_total{{kind=\"config\",result=\"ok\"}} {n}");
        eventually("the config reload", async || {
            weir.metrics().await.contains(&want).then_some(())
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_api_webhook_routes_at_once_survives_a_restart_and_stops_when_deleted() {
        let sub = Receiver::start().await;
        let witness = Receiver::start().await;
        let weir = Weir::start(&hook("witness", &witness.url("/"), ""), &[]).await;
        let created = create(
            &weir,
            None,
            json!({"id": "api-a", "url": sub.url("/a"), "events": ["record.*"],
                   "description": "<b>warehouse</b>", "metadata": {"team": "geo"}}),
        )
        .await;
        assert_eq!(created["source"], "api");
        assert_eq!(created["metadata"]["team"], "geo");
        let secret = created["secret"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("whsec_"), "{secret}");

        weir.send(&json!({"id": "e1", "type": "record.create", "data": {"n": 1}}))
            .await;
        let got = sub.wait_for(1).await;
        assert_eq!(got[0].path, "/a");
        assert_eq!(got[0].json()["id"], "e1");
        assert!(
            verifies(&secret, &got[0]),
            "signed with the secret shown at creation"
        );
        // The secret is shown once: never in a read.
        let (_, read) = weir.get("/v1/webhooks/api-a").await;
        assert!(!read.to_string().contains(&secret[6..]));

        let dir = weir.stop().await;
        let weir = Weir::boot(dir).await;
        weir.send(&json!({"id": "e2", "type": "record.update", "data": {}}))
            .await;
        let got = sub.wait_for(2).await;
        assert_eq!(got[1].json()["id"], "e2");
        assert!(verifies(&secret, &got[1]));

        // A failing subscriber leaves a delivery retrying an hour from now...
        let (status, answer) = weir
            .call(
                Method::PATCH,
                "/v1/webhooks/api-a",
                None,
                Some(&json!({"retry_delays_secs": [3600]})),
            )
            .await;
        assert_eq!(status, 200, "{answer}");
        sub.always(Reply::Status(500));
        weir.send(&json!({"id": "e3", "type": "record.delete", "data": {}}))
            .await;
        weir.wait_deliveries("webhook=api-a&status=retrying", |r| r.len() == 1)
            .await;
        // ...which deleting the webhook cancels, and keeps.
        let (status, answer) = weir
            .call(Method::DELETE, "/v1/webhooks/api-a", None, None)
            .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["canceled"], 1);
        let canceled = weir
            .wait_deliveries("webhook=api-a&status=canceled", |r| r.len() == 1)
            .await;
        assert_eq!(canceled[0]["reason"], "webhook deleted");
        assert_eq!(canceled[0]["event_id"], "e3");
        let (status, _) = weir.get("/v1/webhooks/api-a").await;
        assert_eq!(status, 404);
        // A later event reaches the witness and nothing of it goes to api-a.
        weir.send(&json!({"id": "e4", "type": "record.create", "data": {}}))
            .await;
        witness
            .wait_until(|r| r.iter().any(|x| x.json()["id"] == "e4"))
            .await;
        let log = weir.all_deliveries("event=e4").await;
        assert_eq!(log.len(), 1, "{log:#?}");
        assert_eq!(log[0]["webhook"], "witness");
        assert_eq!(weir.all_deliveries("webhook=api-a").await.len(), 3);
        weir.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rotated_secret_signs_beside_the_new_one_until_the_overlap_ends() {
        let sub = Receiver::start().await;
        let clock = Arc::new(ManualClock::default());
        let weir = Weir::start_with_clock("", clock.clone()).await;
        let old = create(&weir, None, json!({"id": "rot", "url": sub.url("/")})).await["secret"]
            .as_str()
            .unwrap()
            .to_owned();
        let (status, rotated) = weir
            .call(
                Method::POST,
                "/v1/webhooks/rot/secret/rotate",
                None,
                Some(&json!({"overlap_secs": 3600})),
            )
            .await;
        assert_eq!(status, 200, "{rotated}");
        let new = rotated["secret"].as_str().unwrap().to_owned();
        assert_ne!(old, new);
        assert!(rotated["previous_expires_at"].is_string());

        weir.send(&json!({"id": "during", "type": "a.b", "data": {}}))
            .await;
        let got = sub.wait_for(1).await;
        assert_eq!(got[0].header("webhook-signature").matches("v1,").count(), 2);
        assert!(
            verifies(&old, &got[0]),
            "the old secret verifies during the overlap"
        );
        assert!(
            verifies(&new, &got[0]),
            "the new secret verifies during the overlap"
        );

        clock.advance(Duration::from_secs(3601));
        weir.send(&json!({"id": "after", "type": "a.b", "data": {}}))
            .await;
        let got = sub.wait_for(2).await;
        assert_eq!(got[1].json()["id"], "after");
        assert_eq!(got[1].header("webhook-signature").matches("v1,").count(), 1);
        assert!(verifies(&new, &got[1]));
        assert!(!verifies(&old, &got[1]), "the old secret no longer signs");
        weir.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn editing_only_a_secret_or_a_token_in_config_toml_takes_effect() {
        const A: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        const B: &str = "whsec_b3RoZXIta2V5LW5vdC11c2VkLWJ5LXdlaXI=";
        let sub = Receiver::start().await;
        let config = |secret: &str, token: &str| {
            preamble().replace(
                "[server]\n",
                &format!("[server]\nadmin_token = \"{token}\"\n"),
            ) + &hook(
                "signed",
                &sub.url("/"),
                &format!("secrets = [\"{secret}\"]"),
            )
        };
        let weir = Weir::start_with(&config(A, ADMIN), &[]).await;
        weir.send(&json!({"id": "e1", "type": "a.b", "data": {}}))
            .await;
        let got = sub.wait_for(1).await;
        assert!(verifies(A, &got[0]));

        weir.rewrite_config(&config(B, ADMIN));
        reloaded(&weir, 1).await;
        weir.send(&json!({"id": "e2", "type": "a.b", "data": {}}))
            .await;
        let got = sub.wait_for(2).await;
        assert!(
            verifies(B, &got[1]),
            "the next delivery is signed with the new secret"
        );
        assert!(!verifies(A, &got[1]), "and not with the old one");

        weir.rewrite_config(&config(B, "rotated-admin-token"));
        reloaded(&weir, 2).await;
        let (status, _) = weir.get("/v1/webhooks").await;
        assert_eq!(status, 401, "the old admin token is refused");
        let (status, _) = weir
            .call(
                Method::GET,
                "/v1/webhooks",
                Some("rotated-admin-token"),
                None,
            )
            .await;
        assert_eq!(status, 200);
        let (_, list) = weir
            .call(
                Method::GET,
                "/v1/webhooks",
                Some("rotated-admin-token"),
                None,
            )
            .await;
        assert_eq!(list["config"]["last_reload_error"], Value::Null);
        weir.stop().await;
    }

    /// Every API route, with the scope it needs.
    fn routes(
        hook: &str,
        delivery: &str,
        token_id: &str,
    ) -> Vec<(Method, String, &'static str, Option<Value>)> {
        vec![
            (Method::GET, "/v1/webhooks".into(), "webhooks:read", None),
            (
                Method::GET,
                format!("/v1/webhooks/{hook}"),
                "webhooks:read",
                None,
            ),
            (
                Method::POST,
                "/v1/webhooks".into(),
                "webhooks:write",
                Some(json!({"url": "http://127.0.0.1:9/x"})),
            ),
            (
                Method::PATCH,
                format!("/v1/webhooks/{hook}"),
                "webhooks:write",
                Some(json!({"description": "changed"})),
            ),
            (
                Method::POST,
                format!("/v1/webhooks/{hook}/test"),
                "webhooks:write",
                None,
            ),
            (
                Method::POST,
                format!("/v1/webhooks/{hook}/enable"),
                "webhooks:write",
                None,
            ),
            (
                Method::POST,
                format!("/v1/webhooks/{hook}/secret/rotate"),
                "webhooks:write",
                None,
            ),
            (
                Method::GET,
                "/v1/deliveries".into(),
                "deliveries:read",
                None,
            ),
            (
                Method::GET,
                format!("/v1/deliveries/{delivery}"),
                "deliveries:read",
                None,
            ),
            (
                Method::POST,
                format!("/v1/deliveries/{delivery}/replay"),
                "deliveries:replay",
                None,
            ),
            (
                Method::POST,
                "/v1/replay".into(),
                "deliveries:replay",
                Some(json!({"webhook": hook, "status": "dead"})),
            ),
            (Method::GET, "/v1/plugins".into(), "plugins:read", None),
            (Method::GET, "/v1/tokens".into(), "admin", None),
            (
                Method::POST,
                "/v1/tokens".into(),
                "admin",
                Some(json!({"scopes": ["webhooks:read"]})),
            ),
            (
                Method::DELETE,
                format!("/v1/tokens/{token_id}"),
                "admin",
                None,
            ),
            (
                Method::POST,
                "/v1/events".into(),
                "events:write",
                Some(json!({"type": "a.b", "data": {}})),
            ),
            (
                Method::DELETE,
                format!("/v1/webhooks/{hook}"),
                "webhooks:write",
                None,
            ),
        ]
    }

    const SCOPES: [&str; 6] = [
        "events:write",
        "webhooks:read",
        "webhooks:write",
        "deliveries:read",
        "deliveries:replay",
        "plugins:read",
    ];

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_token_matrix_401_403_404() {
        let sub = Receiver::start().await;
        let clock = Arc::new(ManualClock::default());
        let weir = boot_with(
            &with_admin(&hook("cfg-a", &sub.url("/cfg"), "owners = [\"org_a\"]")),
            clock.clone(),
        )
        .await;
        let full_a = weir.token(Some("org_a"), &SCOPES).await;
        let full_b = weir.token(Some("org_b"), &SCOPES).await;

        // org_a's webhook and a delivery of it.
        let a_hook = create(
            &weir,
            Some(&full_a),
            json!({"id": "a-hook", "url": sub.url("/a")}),
        )
        .await;
        assert_eq!(
            a_hook["owners"],
            json!(["org_a"]),
            "an owner's webhook belongs to it"
        );
        let (status, answer) = weir
            .call(
                Method::POST,
                "/v1/events",
                Some(&full_a),
                Some(&json!({"id": "mine", "type": "a.b", "data": {}})),
            )
            .await;
        assert_eq!(status, 202, "{answer}");
        sub.wait_until(|r| r.iter().filter(|x| x.json()["id"] == "mine").count() == 2)
            .await;
        let deliveries = weir.all_deliveries("event=mine").await;
        let a_delivery = deliveries
            .iter()
            .find(|d| d["webhook"] == "a-hook")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let mine = sub
            .received()
            .into_iter()
            .find(|r| r.json()["id"] == "mine")
            .unwrap();
        assert_eq!(
            mine.json()["owner_id"],
            "org_a",
            "a missing owner_id became the token's owner"
        );

        // No token, an unknown one, a malformed header: 401 on every route.
        for (method, path, _, body) in routes("a-hook", &a_delivery, "tok_x") {
            for token in [
                None,
                Some("weir_0000000000000000000000000000000000000000000000"),
            ] {
                if token.is_none() && path == "/v1/events" {
                    continue; // no ingest_token: ingest is open, as configured
                }
                let (status, answer) = weir.call(method.clone(), &path, token, body.as_ref()).await;
                assert_eq!(status, 401, "{method} {path} with {token:?}: {answer}");
                assert_eq!(answer["error"]["code"], "unauthorized");
            }
        }

        // One scope each: exactly the routes that need it get past the check.
        for scope in SCOPES {
            let token = weir.token(Some("org_a"), &[scope]).await;
            for (method, path, needs, body) in routes("a-hook", &a_delivery, "tok_x") {
                if method == Method::DELETE && path.starts_with("/v1/webhooks") {
                    continue; // deleting is checked below, once
                }
                let (status, answer) = weir
                    .call(method.clone(), &path, Some(&token), body.as_ref())
                    .await;
                if needs == scope {
                    assert!(
                        ![401, 403].contains(&status),
                        "{scope} on {method} {path}: {status} {answer}"
                    );
                } else {
                    assert_eq!(status, 403, "{scope} on {method} {path}: {answer}");
                    let msg = answer["error"]["message"].as_str().unwrap();
                    assert!(msg.contains(needs), "{msg} should name {needs}");
                }
            }
        }

        // Another owner: every id of org_a's is a 404, and no list shows them.
        for (method, path, _, body) in routes("a-hook", &a_delivery, "tok_x") {
            let names_a = path.contains("a-hook") || path.contains(&a_delivery) || path == "/v1/replay";
            if !names_a {
                continue;
            }
            let (status, answer) = weir
                .call(method.clone(), &path, Some(&full_b), body.as_ref())
                .await;
            assert_eq!(status, 404, "org_b on {method} {path}: {answer}");
        }
        for path in ["/v1/webhooks/cfg-a", "/v1/webhooks/a-hook"] {
            let (status, _) = weir.call(Method::GET, path, Some(&full_b), None).await;
            assert_eq!(status, 404, "{path}");
        }
        let (_, list) = weir
            .call(Method::GET, "/v1/webhooks", Some(&full_b), None)
            .await;
        assert_eq!(list["webhooks"], json!([]), "{list}");
        assert_eq!(
            list["config"],
            Value::Null,
            "only admins see the config status"
        );
        let (_, log) = weir
            .call(Method::GET, "/v1/deliveries", Some(&full_b), None)
            .await;
        assert_eq!(log["deliveries"], json!([]), "{log}");
        let (_, log) = weir
            .call(
                Method::GET,
                "/v1/deliveries?webhook=a-hook",
                Some(&full_b),
                None,
            )
            .await;
        assert_eq!(log["deliveries"], json!([]), "{log}");
        let (status, _) = weir
            .call(Method::GET, "/v1/webhooks?owner=org_a", Some(&full_b), None)
            .await;
        assert_eq!(status, 403, "naming another owner");
        // org_a sees its own (config and API), and only those.
        let (_, list) = weir
            .call(Method::GET, "/v1/webhooks", Some(&full_a), None)
            .await;
        let listed = list["webhooks"].as_array().unwrap();
        assert!(
            listed.iter().all(|w| w["owners"] == json!(["org_a"])),
            "{list}"
        );
        for id in ["a-hook", "cfg-a"] {
            assert!(listed.iter().any(|w| w["id"] == id), "{id} in {list}");
        }
        let a_count = listed.len();

        // An owner's token posts only its owner's events: a batch naming another
        // owner is refused whole, and a later good one shows nothing of it came.
        create(
            &weir,
            Some(&full_b),
            json!({"id": "b-hook", "url": sub.url("/b")}),
        )
        .await;
        let (status, answer) = weir
            .call(
                Method::POST,
                "/v1/events",
                Some(&full_b),
                Some(
                    &json!([{"id": "ok", "type": "a.b", "data": {}, "owner_id": "org_b"},
                             {"id": "theirs", "type": "a.b", "data": {}, "owner_id": "org_a"}]),
                ),
            )
            .await;
        assert_eq!(status, 403, "{answer}");
        let (status, _) = weir
            .call(
                Method::POST,
                "/v1/events",
                Some(&full_b),
                Some(&json!({"id": "later", "type": "a.b", "data": {}})),
            )
            .await;
        assert_eq!(status, 202);
        sub.wait_until(|r| {
            r.iter()
                .any(|x| x.path == "/b" && x.json()["id"] == "later")
        })
        .await;
        assert!(weir.all_deliveries("event=ok").await.is_empty());
        assert!(weir.all_deliveries("event=theirs").await.is_empty());
        // A webhook naming another owner is refused.
        let (status, _) = weir
            .call(
                Method::POST,
                "/v1/webhooks",
                Some(&full_b),
                Some(&json!({"url": sub.url("/"), "owners": ["org_a"]})),
            )
            .await;
        assert_eq!(status, 403);

        // Revoked and expired tokens: 401.
        let (status, created) = weir
            .call(
                Method::POST,
                "/v1/tokens",
                Some(ADMIN),
                Some(&json!({"scopes": ["webhooks:read"], "expires_at": weir::event::rfc3339(clock_now(&clock) + 3_600_000)})),
            )
            .await;
        assert_eq!(status, 201);
        let expiring = created["token"].as_str().unwrap().to_owned();
        let (status, _) = weir
            .call(Method::GET, "/v1/webhooks", Some(&expiring), None)
            .await;
        assert_eq!(status, 200);
        clock.advance(Duration::from_secs(3601));
        let (status, _) = weir
            .call(Method::GET, "/v1/webhooks", Some(&expiring), None)
            .await;
        assert_eq!(status, 401, "expired");
        let (_, tokens) = weir
            .call(Method::GET, "/v1/tokens", Some(ADMIN), None)
            .await;
        let b_id = tokens["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["owner"] == "org_b")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            !tokens.to_string().contains(&full_b),
            "tokens are never listed"
        );
        let (status, _) = weir
            .call(
                Method::DELETE,
                &format!("/v1/tokens/{b_id}"),
                Some(ADMIN),
                None,
            )
            .await;
        assert_eq!(status, 200);
        let (status, _) = weir
            .call(Method::GET, "/v1/webhooks", Some(&full_b), None)
            .await;
        assert_eq!(status, 401, "revoked");

        // The admin sees everything; a lowercase scheme works.
        let (status, list) = weir.call(Method::GET, "/v1/webhooks", None, None).await;
        assert_eq!(status, 401, "{list}");
        let res = reqwest::Client::new()
            .get(format!("{}/v1/webhooks", weir.url))
            .header("authorization", format!("bearer {ADMIN}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let list: Value = res.json().await.unwrap();
        assert_eq!(
            list["webhooks"].as_array().unwrap().len(),
            a_count + 1,
            "{list}"
        );

        // Deleting: another owner 404, the owner 200.
        let (status, _) = weir
            .call(Method::DELETE, "/v1/webhooks/a-hook", Some(&full_a), None)
            .await;
        assert_eq!(status, 200);
        weir.stop().await;
    }

    fn clock_now(clock: &Arc<ManualClock>) -> weir::event::Millis {
        use weir::event::Clock as _;
        clock.now()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn config_webhooks_are_listed_read_only_and_ids_never_collide() {
        let sub = Receiver::start().await;
        let config = preamble() + &hook("cfg", &sub.url("/"), "");
        let weir = Weir::start_with(&config, &[]).await;
        let (_, read) = weir.get("/v1/webhooks/cfg").await;
        assert_eq!(read["source"], "config");
        for (method, path) in [
            (Method::PATCH, "/v1/webhooks/cfg"),
            (Method::DELETE, "/v1/webhooks/cfg"),
            (Method::POST, "/v1/webhooks/cfg/secret/rotate"),
        ] {
            let body = (method == Method::PATCH).then(|| json!({"description": "x"}));
            let (status, answer) = weir.call(method.clone(), path, None, body.as_ref()).await;
            assert_eq!(status, 409, "{method} {path}: {answer}");
            assert_eq!(answer["error"]["code"], "defined_in_config");
            assert!(
                answer["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("config.toml")
            );
        }
        let (status, _) = weir
            .call(
                Method::POST,
                "/v1/webhooks",
                None,
                Some(&json!({"id": "cfg", "url": sub.url("/")})),
            )
            .await;
        assert_eq!(status, 409);
        create(&weir, None, json!({"id": "api-x", "url": sub.url("/")})).await;
        // A config edit that takes an API webhook's id is rejected whole.
        weir.rewrite_config(
            &(config.clone() + &hook("api-x", &sub.url("/"), "") + &hook("new", &sub.url("/"), "")),
        );
        let error = eventually("the rejected reload", async || {
            let (_, list) = weir.get("/v1/webhooks").await;
            list["config"]["last_reload_error"]
                .as_str()
                .map(str::to_owned)
        })
        .await;
        assert!(error.contains("api-x"), "{error}");
        let (status, _) = weir.get("/v1/webhooks/new").await;
        assert_eq!(status, 404, "nothing of the rejected file applied");
        // Reverting to the running file clears the error.
        weir.rewrite_config(&config);
        eventually("the error to clear", async || {
            let (_, list) = weir.get("/v1/webhooks").await;
            list["config"]["last_reload_error"].is_null().then_some(())
        })
        .await;
        weir.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bad_webhooks_get_clear_answers_and_change_nothing() {
        let weir = Weir::start("", &[]).await;
        let cases = [
            (
                json!({"url": "http://127.0.0.1:9/", "retries": 3}),
                400,
                "retries",
            ),
            (
                json!({"url": "ftp://example.com/"}),
                400,
                "url: must be an http",
            ),
            (
                json!({"url": "http://user:hunter2@[bad/"}),
                400,
                "url: not a valid URL",
            ),
            (
                json!({"url": "http://10.0.0.7/hook"}),
                400,
                "url: refused target 10.0.0.7 (private)",
            ),
            (
                json!({"url": "http://127.0.0.1:9/", "events": ["Record.*"]}),
                400,
                "events",
            ),
            (
                json!({"url": "http://127.0.0.1:9/", "plugins": [{"name": "nowhere"}]}),
                400,
                "plugins[0].name: plugin \"nowhere\" not found",
            ),
            (
                json!({"url": "http://127.0.0.1:9/", "ordering": "sorted"}),
                400,
                "ordering",
            ),
            (
                json!({"url": "http://127.0.0.1:9/", "id": "Bad Id"}),
                400,
                "id: must be",
            ),
            (
                json!({"url": "http://127.0.0.1:9/", "secrets": ["nope"]}),
                400,
                "secrets: a secret must start",
            ),
            (
                json!({"url": "http://127.0.0.1:9/", "allow_targets": ["10.0.0.0/8"]}),
                400,
                "allow_targets",
            ),
            (
                json!({"url": "http://127.0.0.1:9/", "description": "x".repeat(1025)}),
                400,
                "description",
            ),
            (
                json!({"url": "http://127.0.0.1:9/", "metadata": {"blob": "x".repeat(17_000)}}),
                400,
                "metadata",
            ),
            (
                json!({"url": "http://127.0.0.1:9/", "owners": ["a\u{0}b"]}),
                400,
                "control characters",
            ),
            (json!(["not", "an", "object"]), 400, "invalid type"),
        ];
        for (body, status, needle) in cases {
            let (got, answer) = weir
                .call(Method::POST, "/v1/webhooks", None, Some(&body))
                .await;
            let msg = answer["error"]["message"].as_str().unwrap_or_default();
            assert_eq!(got, status, "{body}: {answer}");
            assert!(
                msg.contains(needle),
                "{body}: {msg:?} should contain {needle:?}"
            );
            assert!(
                !msg.contains("hunter2"),
                "a URL's password is never echoed: {msg}"
            );
        }
        // A body must be an object: serde would read `[]` as a struct with
        // every field left out (found by schemathesis).
        create(&weir, None, json!({"id": "arr", "url": "http://127.0.0.1:9/"})).await;
        let (got, answer) = weir
            .call(Method::POST, "/v1/webhooks/arr/secret/rotate", None, Some(&json!([])))
            .await;
        assert_eq!(got, 400, "{answer}");
        let (got, _) = weir
            .call(Method::DELETE, "/v1/webhooks/arr", None, None)
            .await;
        assert_eq!(got, 200);
        // A token's owner is held to the same rule (found by schemathesis on
        // PostgreSQL, whose text cannot hold a NUL: it answered 503).
        let (got, answer) = weir
            .call(
                Method::POST,
                "/v1/tokens",
                None,
                Some(&json!({"scopes": ["webhooks:read"], "owner": "a\u{0}b"})),
            )
            .await;
        assert_eq!(got, 400, "{answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("owner: must not contain control characters"),
            "{answer}"
        );
        // Not JSON: 415, whatever the body.
        let res = reqwest::Client::new()
            .post(format!("{}/v1/webhooks", weir.url))
            .header("content-type", "text/plain")
            .body(r#"{"url": "http://127.0.0.1:9/"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 415);
        create(
            &weir,
            None,
            json!({"id": "dup", "url": "http://127.0.0.1:9/"}),
        )
        .await;
        // A cross-site form to a route that reads no body is refused all the same.
        let res = reqwest::Client::new()
            .post(format!("{}/v1/webhooks/dup/test", weir.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("a=1")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 415);
        assert!(weir.all_deliveries("webhook=dup").await.is_empty());
        let (status, answer) = weir
            .call(
                Method::POST,
                "/v1/webhooks",
                None,
                Some(&json!({"id": "dup", "url": "http://127.0.0.1:9/"})),
            )
            .await;
        assert_eq!(status, 409, "{answer}");
        let (status, answer) = weir
            .call(
                Method::PATCH,
                "/v1/webhooks/dup",
                None,
                Some(&json!({"urll": "x"})),
            )
            .await;
        assert_eq!(status, 400);
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("urll")
        );
        let (_, list) = weir.get("/v1/webhooks").await;
        assert_eq!(list["webhooks"].as_array().unwrap().len(), 1, "{list}");
        weir.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_patches_of_one_webhook_leave_one_whole_writer() {
        let weir = Weir::start("", &[]).await;
        create(
            &weir,
            None,
            json!({"id": "busy", "url": "http://127.0.0.1:9/"}),
        )
        .await;
        let mut tasks = Vec::new();
        for i in 0..16u32 {
            let (url, client) = (weir.url.clone(), reqwest::Client::new());
            tasks.push(tokio::spawn(async move {
                let body = json!({"description": format!("writer {i}"), "max_retries": i, "timeout_secs": i + 1});
                let res = client
                    .patch(format!("{url}/v1/webhooks/busy"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let (_, w) = weir.get("/v1/webhooks/busy").await;
        let i = w["max_retries"].as_u64().unwrap();
        assert_eq!(w["description"], format!("writer {i}"), "{w}");
        assert_eq!(w["timeout_secs"], i + 1, "{w}");
        // And the store holds the same whole writer after a restart.
        let dir = weir.stop().await;
        let weir = Weir::boot(dir).await;
        let (_, again) = weir.get("/v1/webhooks/busy").await;
        assert_eq!(again["description"], w["description"]);
        assert_eq!(again["max_retries"], w["max_retries"]);
        weir.stop().await;
    }

    /// Runs the weir binary with no server or token given: it must find both in
    /// the config file, as `weir deliveries` beside a running `weir serve` does.
    fn cli(config: &std::path::Path, args: &[&str]) -> (bool, String, String) {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(args)
            .arg("--config")
            .arg(config)
            .env_remove("WEIR_URL")
            .env_remove("WEIR_TOKEN")
            .env_remove("WEIR_ADMIN_TOKEN")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_cli_manages_webhooks_and_tokens_finding_the_server_in_config_toml() {
        let weir = Weir::start_listening(|addr| {
            with_admin("").replace("listen = \"127.0.0.1:0\"", &format!("listen = \"{addr}\""))
        })
        .await;
        let config = weir.path("config.toml");
        let run = |args: &[&str]| {
            let (config, args) = (
                config.clone(),
                args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            );
            async move {
                tokio::task::spawn_blocking(move || {
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    cli(&config, &args)
                })
                .await
                .unwrap()
            }
        };
        let (ok, token, err) = run(&[
            "token",
            "create",
            "--owner",
            "org_1",
            "--scope",
            "webhooks:read",
            "--scope",
            "webhooks:write",
        ])
        .await;
        assert!(ok, "{err}");
        let token = token.trim().to_owned();
        assert!(token.starts_with("weir_"), "{token}");

        let (ok, out, err) = run(&[
            "webhooks",
            "create",
            "--id",
            "cli-hook",
            "--endpoint",
            "http://127.0.0.1:9/x",
            "--event",
            "record.*",
            "--token",
            &token,
            "--json",
        ])
        .await;
        assert!(ok, "{err}");
        let created: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(created["owners"], json!(["org_1"]));
        assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));

        let (ok, out, err) = run(&["webhooks", "list"]).await;
        assert!(ok, "{err}");
        assert!(
            out.lines()
                .any(|l| l.starts_with("cli-hook") && l.contains("api")),
            "{out}"
        );
        let (ok, out, _) = run(&[
            "webhooks", "update", "cli-hook", "--active", "false", "--json",
        ])
        .await;
        assert!(ok);
        assert_eq!(
            serde_json::from_str::<Value>(&out).unwrap()["configured_active"],
            false
        );
        let (ok, out, _) = run(&["token", "list"]).await;
        assert!(ok);
        assert!(out.contains("org_1") && out.contains(&token[..13]), "{out}");
        assert!(
            !out.contains(&token[13..]),
            "the token itself is never listed"
        );

        let (ok, out, err) = run(&["webhooks", "delete", "cli-hook"]).await;
        assert!(ok, "{err}");
        assert!(out.contains("deleted cli-hook"), "{out}");
        let (ok, _, err) = run(&["webhooks", "get", "cli-hook"]).await;
        assert!(!ok);
        assert!(err.contains("404") && err.contains("no webhook"), "{err}");
        let (ok, _, err) = run(&["token", "create", "--scope", "everything"]).await;
        assert!(!ok);
        assert!(
            err.contains("--scope \"everything\" is not one of"),
            "{err}"
        );
        weir.stop().await;
    }
}
